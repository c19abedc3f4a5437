/*
 * sandhaven-init: PID 1 of a grain and its bridge to the platform.
 *
 *   sandhaven-init APP_FD APP_PORT API_SOCKET PROXY_PORT GRACE -- COMMAND ARG...
 *
 * As init it starts COMMAND, reaps every orphan, and when it receives SIGTERM
 * (or SIGINT, SIGHUP) or when COMMAND exits, sends SIGTERM to every process of
 * the grain (kill(-1, ...) from PID 1 reaches the whole PID namespace), then
 * reaps until none is left and exits with COMMAND's status (128+N for signal N).
 * Whatever still runs GRACE seconds after that SIGTERM gets SIGKILL, so a
 * process ignoring SIGTERM cannot keep a grain whose app has exited alive.
 * Without it, bubblewrap's teardown SIGKILLs everything and databases run crash
 * recovery on the next start.
 *
 * As bridge it relays, in one epoll loop with no thread or process per
 * connection:
 *   - connections accepted on APP_FD, a listening Unix socket the platform
 *     created on the host and handed down (so the grain needs no writable host
 *     directory), to TCP 127.0.0.1:APP_PORT, where the app listens;
 *     while the app is not listening the accepted connection is closed at once,
 *     which is how the platform polls for readiness;
 *   - connections accepted on TCP 127.0.0.1:PROXY_PORT (the app's HTTP_PROXY)
 *     to the Unix socket API_SOCKET, served by the platform, which decides what
 *     a proxied request may reach.
 * Both listeners exist before COMMAND starts, so the app never races them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF 16384  /* per direction and connection: 32 KiB for a pooled idle connection */

enum kind { LISTEN_APP, LISTEN_PROXY, SIGNALS, GRACE_TIMER, PEER };

struct side;
struct conn {
    struct side *a, *b;   /* a: accepted client, b: connection we opened */
    int connecting;       /* b's connect() still in progress */
    int closed;
    struct conn *next_dead; /* freed after the current batch of events */
};
struct side {
    enum kind kind;       /* PEER for both ends of a connection */
    int fd;
    struct conn *conn;
    char buf[BUF];        /* bytes read from this side, not yet written to the other */
    size_t off, len;
    int eof, shut;        /* read EOF seen; the other side got shutdown(SHUT_WR) */
    unsigned events;
};
struct listener { enum kind kind; int fd; };

static int epfd;
static struct conn *dead;
static pid_t app_pid = -1;
static int app_status = 0, app_done = 0, terminating = 0;
static int app_port, proxy_port, grace_seconds;
static const char *api_socket;
static struct listener app_l = {LISTEN_APP, -1}, proxy_l = {LISTEN_PROXY, -1},
                       sig_l = {SIGNALS, -1}, grace_l = {GRACE_TIMER, -1};

static void fail(const char *what) {
    fprintf(stderr, "sandhaven-init: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void watch(int fd, void *ptr, unsigned events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL) fail("epoll_ctl");
}

static void terminate_all(void) {
    if (terminating) return;
    terminating = 1;
    kill(-1, SIGTERM);
    kill(-1, SIGCONT);
    struct itimerspec at = {.it_value = {.tv_sec = grace_seconds}};
    if (grace_l.fd >= 0) timerfd_settime(grace_l.fd, 0, &at, NULL);
    /* Stop accepting: the grain is going away. */
    if (app_l.fd >= 0) { close(app_l.fd); app_l.fd = -1; }
    if (proxy_l.fd >= 0) { close(proxy_l.fd); proxy_l.fd = -1; }
}

static void conn_close(struct conn *c) {
    if (c->closed) return;
    c->closed = 1;
    close(c->a->fd);
    close(c->b->fd);
    /* Events for these sides may still wait in the current batch. */
    c->next_dead = dead;
    dead = c;
}

static void free_dead(void) {
    while (dead) {
        struct conn *c = dead;
        dead = c->next_dead;
        free(c->a); free(c->b); free(c);
    }
}

static void set_events(struct side *s, unsigned events) {
    if (s->fd < 0 || s->events == events) return;
    s->events = events;
    watch(s->fd, s, events, EPOLL_CTL_MOD);
}

/* Move bytes both ways until nothing more can move now; then update interest. */
static void pump(struct conn *c) {
    struct side *sides[2] = {c->a, c->b};
    if (c->connecting) return;
    int progress = 1;
    while (progress) {
        progress = 0;
        for (int i = 0; i < 2; i++) {
            struct side *src = sides[i], *dst = sides[1 - i];
            if (src->len == 0 && !src->eof) {
                ssize_t n = recv(src->fd, src->buf, BUF, 0);
                if (n > 0) { src->off = 0; src->len = (size_t)n; progress = 1; }
                else if (n == 0) { src->eof = 1; progress = 1; }
                else if (errno != EAGAIN && errno != EINTR) { conn_close(c); return; }
            }
            if (src->len > 0) {
                ssize_t n = send(dst->fd, src->buf + src->off, src->len, MSG_NOSIGNAL);
                if (n > 0) { src->off += (size_t)n; src->len -= (size_t)n; progress = 1; }
                else if (n < 0 && errno != EAGAIN && errno != EINTR) { conn_close(c); return; }
            }
            if (src->len == 0 && src->eof && !src->shut) {
                shutdown(dst->fd, SHUT_WR);
                src->shut = 1;
            }
        }
    }
    if (c->a->shut && c->b->shut) { conn_close(c); return; }
    for (int i = 0; i < 2; i++) {
        struct side *s = sides[i], *other = sides[1 - i];
        unsigned ev = 0;
        if (s->len == 0 && !s->eof) ev |= EPOLLIN | EPOLLRDHUP;
        if (other->len > 0) ev |= EPOLLOUT;
        set_events(s, ev);
    }
}

static struct side *new_side(int fd, struct conn *c) {
    struct side *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = PEER; s->fd = fd; s->conn = c;
    return s;
}

static void accept_one(struct listener *l) {
    int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return;
    int ofd;
    int r;
    if (l->kind == LISTEN_APP) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(app_port)};
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ofd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ofd < 0) { close(cfd); return; }
        int one = 1;
        setsockopt(ofd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        r = connect(ofd, (struct sockaddr *)&to, sizeof to);
    } else {
        struct sockaddr_un to = {.sun_family = AF_UNIX};
        snprintf(to.sun_path, sizeof to.sun_path, "%s", api_socket);
        ofd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ofd < 0) { close(cfd); return; }
        r = connect(ofd, (struct sockaddr *)&to, sizeof to);
    }
    if (r < 0 && errno != EINPROGRESS) { close(ofd); close(cfd); return; }
    struct conn *c = calloc(1, sizeof *c);
    if (!c || !(c->a = new_side(cfd, c)) || !(c->b = new_side(ofd, c))) {
        if (c) { free(c->a); free(c); }
        close(ofd); close(cfd); return;
    }
    c->connecting = r < 0;
    /* Until the outgoing connect completes, only hang-ups of the client matter. */
    c->a->events = c->connecting ? 0 : (EPOLLRDHUP | EPOLLIN);
    watch(cfd, c->a, c->a->events, EPOLL_CTL_ADD);
    c->b->events = c->connecting ? EPOLLOUT : (EPOLLRDHUP | EPOLLIN);
    watch(ofd, c->b, c->b->events, EPOLL_CTL_ADD);
    if (!c->connecting) pump(c);
}

static void on_peer(struct side *s, unsigned events) {
    struct conn *c = s->conn;
    if (c->closed) return;
    if (c->connecting && s == c->b) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { conn_close(c); return; }
        c->connecting = 0;
    }
    pump(c);
    /* Hang-up or error on a side that has nothing left to give: the exchange
     * is over (level-triggered HUP would otherwise fire again and again). */
    if (!c->closed && (events & (EPOLLHUP | EPOLLERR)) && s->eof && s->len == 0)
        conn_close(c);
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno == ECHILD && (terminating || app_done)) {
                exit(WIFEXITED(app_status) ? WEXITSTATUS(app_status)
                     : WIFSIGNALED(app_status) ? 128 + WTERMSIG(app_status) : 0);
            }
            return;
        }
        if (pid == app_pid) {
            app_status = status;
            app_done = 1;
            terminate_all();
        }
    }
}

static int adopt_listener(const char *arg) {
    char *end;
    long fd = strtol(arg, &end, 10);
    int type = 0;
    socklen_t len = sizeof type;
    if (*end || fd < 3 || fd > 1023 || getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0
        || type != SOCK_STREAM) {
        errno = EBADF;
        fail("APP_FD is not a stream socket");
    }
    /* Not for the app: close on exec, and never block the loop. */
    if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) fail("fcntl");
    if (fcntl((int)fd, F_SETFL, fcntl((int)fd, F_GETFL) | O_NONBLOCK) < 0) fail("fcntl");
    return (int)fd;
}

static int listen_tcp(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) fail("proxy port");
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 8 || strcmp(argv[6], "--") != 0) {
        fprintf(stderr, "usage: sandhaven-init APP_FD APP_PORT API_SOCKET PROXY_PORT GRACE -- COMMAND...\n");
        return 125;
    }
    app_port = atoi(argv[2]);
    api_socket = argv[3];
    proxy_port = atoi(argv[4]);
    grace_seconds = atoi(argv[5]) > 0 ? atoi(argv[5]) : 1;

    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM); sigaddset(&mask, SIGINT); sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD); sigaddset(&mask, SIGQUIT);
    if (sigprocmask(SIG_BLOCK, &mask, &old) < 0) fail("sigprocmask");
    sig_l.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_l.fd < 0) fail("signalfd");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail("epoll");
    proxy_l.fd = listen_tcp(proxy_port);
    app_l.fd = adopt_listener(argv[1]);
    grace_l.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (grace_l.fd < 0) fail("timerfd");
    watch(sig_l.fd, &sig_l, EPOLLIN, EPOLL_CTL_ADD);
    watch(grace_l.fd, &grace_l, EPOLLIN, EPOLL_CTL_ADD);
    watch(app_l.fd, &app_l, EPOLLIN, EPOLL_CTL_ADD);
    watch(proxy_l.fd, &proxy_l, EPOLLIN, EPOLL_CTL_ADD);

    app_pid = fork();
    if (app_pid < 0) fail("fork");
    if (app_pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[7], &argv[7]);
        fprintf(stderr, "sandhaven-init: cannot run %s: %s\n", argv[7], strerror(errno));
        _exit(127);
    }

    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epfd, events, 64, -1);
        if (n < 0) { if (errno == EINTR) continue; fail("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            enum kind k = *(enum kind *)p;
            if (k == SIGNALS) {
                struct signalfd_siginfo si;
                while (read(sig_l.fd, &si, sizeof si) == sizeof si) {
                    if (si.ssi_signo == SIGCHLD) continue;
                    terminate_all();
                }
                reap();
            } else if (k == GRACE_TIMER) {
                uint64_t expirations;
                if (read(grace_l.fd, &expirations, sizeof expirations) > 0) kill(-1, SIGKILL);
            } else if (k == LISTEN_APP || k == LISTEN_PROXY) {
                struct listener *l = p;
                if (l->fd >= 0) accept_one(l);
            } else {
                on_peer(p, events[i].events);
            }
        }
        free_dead();
    }
}
