/* The loopback TCP floor for a round trip: N bytes to an echo thread, which writes back what it
 * reads as it reads it, and N bytes read back. Buffers are touched before the clock starts, so
 * what is timed is the kernel's loopback path and nothing else.
 *
 *     cc -O2 -pthread -o tcp_echo tcp_echo.c && ./tcp_echo BYTES REPEATS   # prints seconds per round trip
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

struct peer { int fd; size_t bytes; char *buffer; };

static void write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) { perror("write"); exit(1); }
        data += n;
        size -= (size_t)n;
    }
}

static void *echo(void *arg) {  /* the server: what it reads goes straight back */
    struct peer *p = arg;
    char *chunk = malloc(CHUNK);
    for (size_t done = 0; done < p->bytes;) {
        ssize_t n = read(p->fd, chunk, CHUNK);
        if (n <= 0) { perror("echo read"); exit(1); }
        write_all(p->fd, chunk, (size_t)n);
        done += (size_t)n;
    }
    free(chunk);
    return NULL;
}

static void *send_all(void *arg) {  /* the client's sending half */
    struct peer *p = arg;
    write_all(p->fd, p->buffer, p->bytes);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s BYTES REPEATS\n", argv[0]); return 2; }
    size_t bytes = strtoull(argv[1], NULL, 10);
    int repeats = atoi(argv[2]);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t length = sizeof address;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(listener, (struct sockaddr *)&address, length) || listen(listener, 1) ||
        getsockname(listener, (struct sockaddr *)&address, &length)) { perror("listen"); return 1; }
    char *out = malloc(bytes), *back = malloc(bytes);
    memset(out, 7, bytes);
    memset(back, 0, bytes);
    for (int r = 0; r < repeats; r++) {
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client, (struct sockaddr *)&address, length)) { perror("connect"); return 1; }
        struct peer server = { accept(listener, NULL, NULL), bytes, NULL }, sender = { client, bytes, out };
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        pthread_t echo_thread, send_thread;
        pthread_create(&echo_thread, NULL, echo, &server);
        pthread_create(&send_thread, NULL, send_all, &sender);
        for (size_t got = 0; got < bytes;) {
            ssize_t n = read(client, back + got, bytes - got);
            if (n <= 0) { perror("read"); return 1; }
            got += (size_t)n;
        }
        pthread_join(send_thread, NULL);
        pthread_join(echo_thread, NULL);
        clock_gettime(CLOCK_MONOTONIC, &end);
        if (memcmp(out, back, bytes)) { fprintf(stderr, "the echo differs\n"); return 1; }
        printf("%.6f\n", (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9);
        close(client);
        close(server.fd);
    }
    return 0;
}
