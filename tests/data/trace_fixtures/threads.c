/* threads N FILE...: N threads start together (a barrier) and thread i opens and reads
   FILE[i % count]. Exit 0 when every open succeeded. A tracer must see every file. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_barrier_t start;
static char **files;
static int nfiles;

static void *worker(void *arg)
{
    long i = (long)arg;
    const char *path = files[i % nfiles];
    struct stat st;
    char buf[256];
    pthread_barrier_wait(&start);
    if (stat(path, &st) != 0)
        return (void *)1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return (void *)1;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: threads N FILE...\n");
        return 2;
    }
    int n = atoi(argv[1]);
    files = argv + 2;
    nfiles = argc - 2;
    pthread_t *t = calloc(n, sizeof *t);
    pthread_barrier_init(&start, NULL, n);
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 3;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        failed |= r != NULL;
    }
    return failed;
}
