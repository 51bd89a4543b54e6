/* A local-mode instance: the daemons that `jmp local start` started for one mount point */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "local-instance.h"
#include "log.h"
#include "version.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

int runtime_dir(char **ret) {
        const char *e = getenv("JMP_RUNTIME_DIR");
        char *s;

        if (e && *e)
                s = strdup(e);
        else if (geteuid() == 0)
                s = strdup("/run/jumpstarter");
        else {
                e = getenv("XDG_RUNTIME_DIR");
                if (!e || !*e)
                        return log_error_errno(ENXIO, "Neither JMP_RUNTIME_DIR nor XDG_RUNTIME_DIR is set.");
                if (asprintf(&s, "%s/jumpstarter", e) < 0)
                        s = NULL;
        }
        if (!s)
                return log_oom();
        *ret = s;
        return 0;
}

/* "/tmp/a b/jmp" → "tmp-a_20b-jmp": one state directory per mount point. */
static char *escape_path(const char *path) {
        char *s = malloc(strlen(path) * 3 + 2), *o = s;

        if (!s)
                return NULL;
        while (*path == '/')
                path++;
        if (!*path)
                *o++ = '-';
        for (; *path; path++) {
                unsigned char c = *path;

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.')
                        *o++ = c;
                else if (c == '/')
                        *o++ = '-';
                else
                        o += sprintf(o, "_%02x", c);
        }
        *o = 0;
        return s;
}

static int absolute_path(const char *p, char **ret) {
        char cwd[PATH_MAX], *s;
        size_t n;

        if (p[0] == '/')
                s = strdup(p);
        else {
                if (!getcwd(cwd, sizeof cwd))
                        return -errno;
                if (asprintf(&s, "%s/%s", cwd, p) < 0)
                        s = NULL;
        }
        if (!s)
                return -ENOMEM;
        /* Drop trailing slashes and "/." so that "/jmp/" and "/jmp" name one instance. */
        for (n = strlen(s); n > 1 && s[n - 1] == '/'; n--)
                s[n - 1] = 0;
        *ret = s;
        return 0;
}

/* Field 22 of /proc/PID/stat: the start time, which tells a reused pid from ours. */
static int process_start_time(pid_t pid, unsigned long long *ret) {
        char path[64], buf[1024], *p;
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return -EIO;
        buf[n] = 0;
        p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        /* After ") " come fields 3..; the start time is field 22. */
        p += 2;
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EIO;
                p++;
        }
        if (sscanf(p, "%llu", ret) != 1)
                return -EIO;
        /* A zombie has not finished yet but no longer runs anything. */
        if (strstr(buf, ") Z "))
                return -ESRCH;
        return 0;
}

static int pid_file_write(const char *dir, const char *name, pid_t pid) {
        char path[PATH_MAX];
        unsigned long long st;
        FILE *f;
        int r;

        r = process_start_time(pid, &st);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "%s/%s.pid", dir, name);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, "%d %llu\n", (int) pid, st);
        if (fclose(f) != 0)
                return -errno;
        return 0;
}

static pid_t pid_file_read(const char *dir, const char *name) {
        char path[PATH_MAX];
        unsigned long long st, now;
        int pid = 0;
        FILE *f;

        snprintf(path, sizeof path, "%s/%s.pid", dir, name);
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (fscanf(f, "%d %llu", &pid, &st) != 2 || pid <= 0)
                pid = 0;
        fclose(f);
        if (pid > 0 && (process_start_time(pid, &now) < 0 || now != st))
                pid = 0;
        return pid;
}

static char *read_line_file(const char *dir, const char *name) {
        char path[PATH_MAX], *line = NULL;
        size_t n = 0;
        ssize_t k;
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        k = getline(&line, &n, f);
        fclose(f);
        if (k <= 0) {
                free(line);
                return NULL;
        }
        if (line[k - 1] == '\n')
                line[k - 1] = 0;
        return line;
}

LocalInstance *local_instance_free(LocalInstance *i) {
        if (!i)
                return NULL;
        free(i->mountpoint);
        free(i->dir);
        free(i->socket_path);
        free(i->config_path);
        free(i);
        return NULL;
}

int local_instance_open(const char *mountpoint, LocalInstance **ret) {
        _cleanup_(local_instance_freep) LocalInstance *i = NULL;
        _cleanup_free_ char *rt = NULL, *esc = NULL;
        int r;

        i = calloc(1, sizeof *i);
        if (!i)
                return -ENOMEM;
        r = absolute_path(mountpoint, &i->mountpoint);
        if (r < 0)
                return r;
        r = runtime_dir(&rt);
        if (r < 0)
                return r;
        esc = escape_path(i->mountpoint);
        if (!esc)
                return -ENOMEM;
        if (asprintf(&i->dir, "%s/local/%s", rt, esc) < 0 ||
            asprintf(&i->socket_path, "%s/agent.sock", i->dir) < 0)
                return -ENOMEM;
        i->config_path = read_line_file(i->dir, "config");
        i->daemon_pid = pid_file_read(i->dir, "jumpstarterd");
        i->fuse_pid = pid_file_read(i->dir, "jumpstarter-fuse");
        *ret = TAKE_PTR(i);
        return 0;
}

int local_instance_find(const char *mountpoint, LocalInstance **ret) {
        _cleanup_free_ char *rt = NULL, *base = NULL;
        LocalInstance *found = NULL;
        struct dirent *de;
        DIR *d;
        int r;

        if (mountpoint)
                return local_instance_open(mountpoint, ret);

        r = runtime_dir(&rt);
        if (r < 0)
                return r;
        if (asprintf(&base, "%s/local", rt) < 0)
                return -ENOMEM;
        d = opendir(base);
        if (!d)
                return errno == ENOENT ? -ENOENT : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *mp = NULL, *dir = NULL;
                LocalInstance *i;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&dir, "%s/%s", base, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                mp = read_line_file(dir, "mountpoint");
                if (!mp)
                        continue;
                r = local_instance_open(mp, &i);
                if (r < 0)
                        break;
                if (!local_instance_is_running(i)) {
                        local_instance_free(i);
                        continue;
                }
                if (found) {
                        local_instance_free(i);
                        r = -ENOTUNIQ;
                        break;
                }
                found = i;
        }
        closedir(d);
        if (r < 0) {
                local_instance_free(found);
                return r;
        }
        if (!found)
                return -ENOENT;
        *ret = found;
        return 0;
}

bool local_instance_is_running(const LocalInstance *i) {
        return i->daemon_pid > 0 || i->fuse_pid > 0;
}

/* Fields of /proc/self/mountinfo: 5 is the mount point, after " - " the fs type. */
int mountpoint_state(const char *path, bool *ret_mounted, bool *ret_ours) {
        char *line = NULL;
        size_t n = 0;
        FILE *f;

        *ret_mounted = *ret_ours = false;
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        while (getline(&line, &n, f) > 0) {
                char mp[PATH_MAX], fstype[256];
                const char *sep;

                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
                        continue;
                /* Octal escapes (\040 for space) as the kernel writes them; compare them as such. */
                if (!streq(mp, path))
                        continue;
                sep = strstr(line, " - ");
                *ret_mounted = true;
                *ret_ours = sep && sscanf(sep + 3, "%255s", fstype) == 1 && streq(fstype, "fuse.jumpstarter");
        }
        free(line);
        fclose(f);
        return 0;
}

int local_instance_record(LocalInstance *i, const char *config_path) {
        char path[PATH_MAX];
        FILE *f;

        snprintf(path, sizeof path, "%s/mountpoint", i->dir);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, "%s\n", i->mountpoint);
        if (fclose(f) != 0)
                return -errno;
        snprintf(path, sizeof path, "%s/config", i->dir);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, "%s\n", config_path);
        if (fclose(f) != 0)
                return -errno;
        if (i->daemon_pid > 0 && pid_file_write(i->dir, "jumpstarterd", i->daemon_pid) < 0)
                return -EIO;
        if (i->fuse_pid > 0 && pid_file_write(i->dir, "jumpstarter-fuse", i->fuse_pid) < 0)
                return -EIO;
        return 0;
}

char *log_tail(const char *path, size_t max_bytes) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        char *buf, *p;
        ssize_t n;
        off_t off;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return strdup("");
        off = st.st_size > (off_t) max_bytes ? st.st_size - (off_t) max_bytes : 0;
        buf = malloc(max_bytes + 1);
        if (!buf)
                return NULL;
        n = pread(fd, buf, max_bytes, off);
        if (n < 0)
                n = 0;
        buf[n] = 0;
        /* Start at a line boundary when cut. */
        p = buf;
        if (off > 0 && (p = strchr(buf, '\n')))
                p++;
        else
                p = buf;
        memmove(buf, p, strlen(p) + 1);
        return buf;
}

int find_program(const char *name, char **ret) {
        char self[PATH_MAX], *dir, *p;
        const char *e;
        ssize_t n;

        /* Tests run a daemon built differently (jumpstarterd-fakegpio has a fake GPIO chip). */
        e = streq(name, "jumpstarterd") ? getenv("JMP_JUMPSTARTERD") : NULL;
        if (e && *e) {
                if (access(e, X_OK) < 0)
                        return -errno;
                p = strdup(e);
                if (!p)
                        return -ENOMEM;
                return *ret = p, 0;
        }

        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
                self[n] = 0;
                dir = dirname(self);
                /* Installed side by side, or the build tree: build/tools/jmp, build/NAME/NAME. */
                if (asprintf(&p, "%s/%s", dir, name) >= 0) {
                        if (access(p, X_OK) == 0)
                                return *ret = p, 0;
                        free(p);
                }
                if (asprintf(&p, "%s/../%s/%s", dir, name, name) >= 0) {
                        if (access(p, X_OK) == 0)
                                return *ret = p, 0;
                        free(p);
                }
        }
        if (asprintf(&p, "%s/%s", SBINDIR, name) < 0)
                return -ENOMEM;
        if (access(p, X_OK) == 0)
                return *ret = p, 0;
        free(p);
        return -ENOENT;
}

static int notify_socket_open(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int one = 1;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        /* Only messages whose sender is our child count (SCM_CREDENTIALS). */
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Reads one notify datagram; returns 1 when it is from pid and says READY=1, and keeps the
 * latest STATUS= for error messages. */
static int notify_receive(int fd, pid_t pid, char **status) {
        char buf[4096], ctrl[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = { buf, sizeof buf - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
        struct ucred *cred = NULL;
        bool ready = false;
        ssize_t n;

        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return errno == EAGAIN ? 0 : -errno;
        buf[n] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                        cred = (struct ucred *) CMSG_DATA(c);
        if (!cred || cred->pid != pid)
                return 0;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                if (streq(line, "READY=1"))
                        ready = true;
                else if (strncmp(line, "STATUS=", 7) == 0) {
                        free(*status);
                        *status = strdup(line + 7);
                }
        }
        return ready;
}

int spawn_and_wait_ready(const char *dir, const char *name, char *const argv[], const char *log_path,
                         uint64_t timeout_usec, pid_t *ret_pid, char **ret_status) {
        _cleanup_close_ int nfd = -EBADF, pidfd = -EBADF;
        _cleanup_free_ char *npath = NULL, *status = NULL;
        uint64_t deadline;
        pid_t pid;
        int r;

        if (asprintf(&npath, "%s/%s.notify", dir, name) < 0)
                return -ENOMEM;
        nfd = notify_socket_open(npath);
        if (nfd < 0)
                return nfd;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null, logfd;

                (void) setsid();
                null = open("/dev/null", O_RDWR);
                logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
                if (null < 0 || logfd < 0)
                        _exit(127);
                dup2(null, STDIN_FILENO);
                dup2(logfd, STDOUT_FILENO);
                dup2(logfd, STDERR_FILENO);
                setenv("NOTIFY_SOCKET", npath, 1);
                unsetenv("JOURNAL_STREAM");
                execv(argv[0], argv);
                fprintf(stderr, "Failed to execute %s: %m\n", argv[0]);
                _exit(127);
        }

        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return -errno;

        deadline = now_usec() + timeout_usec;
        for (;;) {
                struct pollfd p[2] = { { .fd = nfd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
                uint64_t now = now_usec();

                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (poll(p, 2, (int) ((deadline - now) / USEC_PER_MSEC) + 1) < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (p[0].revents & POLLIN) {
                        r = notify_receive(nfd, pid, &status);
                        if (r > 0) {
                                (void) unlink(npath);
                                *ret_pid = pid;
                                *ret_status = TAKE_PTR(status);
                                return 0;
                        }
                }
                if (p[1].revents & POLLIN) {
                        int wstatus = 0;

                        (void) waitpid(pid, &wstatus, 0);
                        free(status);
                        if (WIFEXITED(wstatus))
                                r = asprintf(&status, "%s exited with status %d", name, WEXITSTATUS(wstatus));
                        else
                                r = asprintf(&status, "%s was killed by signal %s", name,
                                             strsignal(WTERMSIG(wstatus)));
                        if (r < 0)
                                status = NULL;
                        *ret_status = TAKE_PTR(status);
                        (void) unlink(npath);
                        return -ECHILD;
                }
        }

        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        (void) unlink(npath);
        if (asprintf(ret_status, "%s did not report readiness in time%s%s", name, status ? " (last status: " : "",
                     status ? status : "") < 0)
                *ret_status = NULL;
        return r;
}

int process_stop(pid_t pid, const char *what, uint64_t timeout_usec) {
        _cleanup_close_ int pidfd = -EBADF;
        struct pollfd p;
        int r;

        if (pid <= 0)
                return 0;
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return errno == ESRCH ? 0 : -errno;
        if (pidfd_send_signal(pidfd, SIGTERM, NULL, 0) < 0)
                return errno == ESRCH ? 0 : -errno;
        p = (struct pollfd) { .fd = pidfd, .events = POLLIN };
        r = poll(&p, 1, (int) (timeout_usec / USEC_PER_MSEC));
        if (r > 0) {
                (void) waitpid(pid, NULL, WNOHANG);
                return 0;
        }
        log_warning("%s (pid %d) did not stop within %llus, killing it.", what, (int) pid,
                    (unsigned long long) (timeout_usec / USEC_PER_SEC));
        (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        (void) poll(&p, 1, 5000);
        (void) waitpid(pid, NULL, WNOHANG);
        return 0;
}

static void remove_state_dir(const char *dir) {
        static const char *const files[] = {
                "jumpstarterd.pid", "jumpstarter-fuse.pid", "agent.sock", "mountpoint", "config",
                "jumpstarterd.notify", "jumpstarter-fuse.notify", "lock",
        };
        char path[PATH_MAX];

        for (size_t k = 0; k < ELEMENTSOF(files); k++) {
                snprintf(path, sizeof path, "%s/%s", dir, files[k]);
                (void) unlink(path);
        }
        /* The logs stay for a post-mortem; the next start appends to them. */
}

int local_instance_stop(LocalInstance *i) {
        bool mounted, ours;
        int r;

        /* The file system first, so that users see the DUTs go before their power does. */
        r = process_stop(i->fuse_pid, "jumpstarter-fuse", 10 * USEC_PER_SEC);
        if (r < 0)
                log_warning_errno(r, "Failed to stop jumpstarter-fuse (pid %d): %m", (int) i->fuse_pid);
        r = mountpoint_state(i->mountpoint, &mounted, &ours);
        if (r >= 0 && mounted && ours) {
                /* A killed jumpstarter-fuse leaves its mount behind; files still open keep a lazily
                 * detached mount alive until they close, with every access failing. */
                if (umount2(i->mountpoint, MNT_DETACH) < 0) {
                        char *const argv[] = { "fusermount3", "-u", "-z", i->mountpoint, NULL };
                        pid_t pid = fork();

                        if (pid == 0) {
                                execvp(argv[0], argv);
                                _exit(127);
                        }
                        if (pid > 0)
                                (void) waitpid(pid, NULL, 0);
                }
                r = mountpoint_state(i->mountpoint, &mounted, &ours);
                if (r >= 0 && mounted && ours)
                        return log_error_errno(EBUSY, "Failed to unmount %s.", i->mountpoint);
        }

        /* jumpstarterd powers every DUT off when it gets SIGTERM. */
        r = process_stop(i->daemon_pid, "jumpstarterd", 20 * USEC_PER_SEC);
        if (r < 0)
                return log_error_errno(r, "Failed to stop jumpstarterd (pid %d): %m", (int) i->daemon_pid);

        remove_state_dir(i->dir);
        i->fuse_pid = i->daemon_pid = 0;
        return 0;
}
