/*
 * sandhaven-spawn: prepare the host side of one grain, then exec bubblewrap.
 *
 *   sandhaven-spawn [--cgroup PROCS_FILE]... [--nofile SOFT:HARD]
 *                   [--stage-root DIR --stage NAME=SOURCE[:ro]]...
 *                   [--uid UID --gid GID] -- PROGRAM ARG...
 *
 * Steps, in this order, each needing root until the last:
 *   1. join the grain's cgroups (memory, pids) so that everything forked from
 *      here on is counted against the grain's limits;
 *   2. set rlimits (open files, no core dumps), inherited by the whole grain;
 *   3. in a private mount namespace, bind each source directory under a fresh
 *      tmpfs at DIR/NAME: bubblewrap, once unprivileged, can then reach its
 *      sources whatever the modes of their parent directories (a data dir under
 *      /root, say). Nothing of this is visible outside this process tree;
 *   4. drop to the unprivileged grain uid/gid with no supplementary groups;
 *   5. exec PROGRAM (bubblewrap).
 * Any failure prints one line to stderr and exits 125 before exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ITEMS 16

static void die(const char *what, const char *arg) {
    fprintf(stderr, "sandhaven-spawn: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    exit(125);
}

static void usage(const char *msg) {
    fprintf(stderr, "sandhaven-spawn: %s\n", msg);
    exit(125);
}

int main(int argc, char **argv) {
    const char *cgroups[MAX_ITEMS];
    int n_cgroups = 0;
    const char *stage_root = NULL;
    char *stages[MAX_ITEMS];
    int n_stages = 0;
    long soft = -1, hard = -1, uid = -1, gid = -1;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (i + 1 >= argc) usage("option needs a value");
        if (strcmp(argv[i], "--cgroup") == 0 && n_cgroups < MAX_ITEMS) cgroups[n_cgroups++] = argv[++i];
        else if (strcmp(argv[i], "--stage") == 0 && n_stages < MAX_ITEMS) stages[n_stages++] = argv[++i];
        else if (strcmp(argv[i], "--stage-root") == 0) stage_root = argv[++i];
        else if (strcmp(argv[i], "--nofile") == 0) {
            if (sscanf(argv[++i], "%ld:%ld", &soft, &hard) != 2) usage("--nofile wants SOFT:HARD");
        } else if (strcmp(argv[i], "--uid") == 0) uid = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--gid") == 0) gid = strtol(argv[++i], NULL, 10);
        else usage("unknown option or too many items");
    }
    if (i >= argc) usage("no program given after --");
    if (n_stages && !stage_root) usage("--stage needs --stage-root");

    /* 1. cgroups */
    for (int c = 0; c < n_cgroups; c++) {
        int fd = open(cgroups[c], O_WRONLY | O_CLOEXEC);
        if (fd < 0) die("cannot open", cgroups[c]);
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write(fd, pid, len) != len) die("cannot join cgroup", cgroups[c]);
        close(fd);
    }

    /* 2. rlimits */
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) < 0) die("setrlimit", "core");
    if (soft >= 0) {
        struct rlimit nofile = {(rlim_t)soft, (rlim_t)hard};
        if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) die("setrlimit", "nofile");
    }

    /* 3. staging: in the new namespace, open every source first (the tmpfs may
     * hide it; a bind source must belong to the caller's namespace), then bind. */
    if (n_stages) {
        int fds[MAX_ITEMS], ro[MAX_ITEMS];
        if (unshare(CLONE_NEWNS) < 0) die("unshare", "mount namespace");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount", "private /");
        for (int s = 0; s < n_stages; s++) {
            char *eq = strchr(stages[s], '=');
            if (!eq || eq == stages[s] || memchr(stages[s], '/', (size_t)(eq - stages[s])))
                usage("--stage wants NAME=SOURCE[:ro]");
            *eq = 0;
            char *src = eq + 1;
            size_t len = strlen(src);
            ro[s] = len > 3 && strcmp(src + len - 3, ":ro") == 0;
            if (ro[s]) src[len - 3] = 0;
            fds[s] = open(src, O_PATH | O_CLOEXEC);
            if (fds[s] < 0) die("cannot open", src);
        }
        if (mount("tmpfs", stage_root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
            die("mount tmpfs on", stage_root);
        for (int s = 0; s < n_stages; s++) {
            char dst[4096], src[64];
            struct stat st;
            snprintf(dst, sizeof dst, "%s/%s", stage_root, stages[s]);
            snprintf(src, sizeof src, "/proc/self/fd/%d", fds[s]);
            if (fstat(fds[s], &st) < 0) die("stat", stages[s]);
            if (S_ISDIR(st.st_mode)) {
                if (mkdir(dst, 0755) < 0) die("mkdir", dst);
            } else {
                int f = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                if (f < 0) die("create", dst);
                close(f);
            }
            if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind", dst);
            if (ro[s] && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
                die("remount read-only", dst);
            close(fds[s]);
        }
        if (chdir("/") < 0) die("chdir", "/");
    }

    /* 4. drop privileges */
    if (gid >= 0) {
        if (setgroups(0, NULL) < 0) die("setgroups", NULL);
        if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) die("setresgid", NULL);
    }
    if (uid >= 0 && setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) die("setresuid", NULL);

    /* 5. exec */
    execvp(argv[i], &argv[i]);
    die("cannot run", argv[i]);
    return 125;
}
