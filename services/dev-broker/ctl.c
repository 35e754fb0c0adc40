/* The client mode: `topup-devbroker ctl [--socket ADDR] command args...` sends one control line. */
#include "devbroker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A reply is one short line; the broker answers at once unless it is wedged. */
#define CTL_REPLY_TIMEOUT_MS 10000

static void ctl_usage(FILE *out)
{
    fprintf(out,
            "usage: topup-devbroker ctl [--socket IP:PORT] COMMAND [ARGS...]\n"
            "  --socket defaults to $DEVBROKER_CONTROL (written by deploy/local/stack.sh).\n"
            "  `topup-devbroker ctl help` lists the commands.\n"
            "  Prints the broker's reply; exit 0 on ok, 1 on err, 2 if it cannot talk to it.\n");
}

static int ctl_connect(const char *addr)
{
    struct tp_error err = {0};
    struct sockaddr_in sin;
    if (control_parse_addr(addr, &sin, &err) != TP_OK) {
        fprintf(stderr, "topup-devbroker ctl: %s\n", err.msg);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fprintf(stderr, "topup-devbroker ctl: connect %s: %s\n", addr, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* Reads up to the first newline; returns 0 with the line (newline stripped) or -1. */
static int ctl_read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, CTL_REPLY_TIMEOUT_MS) <= 0) {
            return -1;
        }
        ssize_t r = recv(fd, buf + n, len - 1 - n, 0);
        if (r <= 0) {
            return -1;
        }
        n += (size_t)r;
        char *nl = memchr(buf, '\n', n);
        if (nl != NULL) {
            *nl = '\0';
            return 0;
        }
    }
    return -1;
}

int ctl_main(int argc, char **argv)
{
    const char *addr = getenv("DEVBROKER_CONTROL");
    int i = 1;
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        if ((strcmp(argv[i], "--socket") == 0 || strcmp(argv[i], "--control") == 0) &&
            i + 1 < argc) {
            addr = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            ctl_usage(stdout);
            return 0;
        } else {
            ctl_usage(stderr);
            return 2;
        }
    }
    if (i >= argc || addr == NULL || addr[0] == '\0') {
        ctl_usage(stderr);
        return 2;
    }
    char line[CONTROL_LINE_MAX];
    size_t n = 0;
    for (; i < argc; i++) {
        int w = snprintf(line + n, sizeof(line) - n, "%s%s", n == 0 ? "" : " ", argv[i]);
        if (w < 0 || (size_t)w >= sizeof(line) - n - 1) {
            fprintf(stderr, "topup-devbroker ctl: command longer than %d bytes\n",
                    CONTROL_LINE_MAX - 2);
            return 2;
        }
        n += (size_t)w;
    }
    line[n++] = '\n';
    int fd = ctl_connect(addr);
    if (fd < 0) {
        return 2;
    }
    int rc = 2;
    char reply[CONTROL_LINE_MAX + 2];
    if (send(fd, line, n, MSG_NOSIGNAL) != (ssize_t)n || ctl_read_line(fd, reply, sizeof(reply))) {
        fprintf(stderr, "topup-devbroker ctl: no reply from %s\n", addr);
        goto out;
    }
    printf("%s\n", reply);
    rc = strncmp(reply, "ok", 2) == 0 ? 0 : 1;
out:
    close(fd);
    return rc;
}
