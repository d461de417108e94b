/* forkserver DIR NAME...: a forking TCP server on 127.0.0.1 (the kernel picks the port).
   It chdirs to DIR, then forks a client that asks for each NAME in turn; for every
   connection the server forks a handler that opens NAME relative to the inherited cwd and
   replies with its size. Exit 0 when every reply was a size. Bounded by alarm(). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void handle(int conn)
{
    char name[256] = {0};
    ssize_t n = read(conn, name, sizeof name - 1);
    if (n <= 0)
        _exit(1);
    int fd = open(name, O_RDONLY);
    struct stat st;
    char reply[64];
    if (fd < 0 || fstat(fd, &st) != 0)
        n = snprintf(reply, sizeof reply, "ERR\n");
    else
        n = snprintf(reply, sizeof reply, "%lld\n", (long long)st.st_size);
    write(conn, reply, n);
    _exit(0);
}

static int client(struct sockaddr_in addr, int count, char **names)
{
    int bad = 0;
    for (int i = 0; i < count; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0)
            return 1;
        write(s, names[i], strlen(names[i]));
        char buf[64] = {0};
        if (read(s, buf, sizeof buf - 1) <= 0 || buf[0] < '0' || buf[0] > '9')
            bad = 1;
        close(s);
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: forkserver DIR NAME...\n");
        return 2;
    }
    alarm(20);
    if (chdir(argv[1]) != 0)
        return 2;
    int count = argc - 2;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&addr, &len) != 0)
        return 3;
    pid_t cl = fork();
    if (cl == 0) {
        close(ls);
        _exit(client(addr, count, argv + 2));
    }
    for (int i = 0; i < count; i++) {
        int conn = accept(ls, NULL, NULL);
        if (conn < 0)
            return 4;
        if (fork() == 0) {
            close(ls);
            handle(conn);
        }
        close(conn);
    }
    int status, rc = 0;
    if (waitpid(cl, &status, 0) != cl || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = 5;
    while (wait(&status) > 0)
        ;
    return rc;
}
