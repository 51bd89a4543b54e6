/* Replays corpus files through a fuzzer's entry point, so that each corpus runs as an ordinary test */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (size == allocated) {
                        uint8_t *p;

                        allocated = MAX(allocated * 2, (size_t) 4096);
                        p = realloc(buf, allocated);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                n = read(fd, buf + size, allocated - size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int run_file(const char *path) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = read_file(path, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        /* A copy of exactly the file's size, so that ASan sees any read past the end. */
        fprintf(stderr, "%s (%zu bytes)\n", path, size);
        (void) LLVMFuzzerTestOneInput(data, size);
        return 0;
}

static int filter_hidden(const struct dirent *de) {
        return de->d_name[0] != '.';
}

static int run_dir(const char *dir, unsigned *n) {
        struct dirent **entries = NULL;
        int k, r = 0;

        k = scandir(dir, &entries, filter_hidden, alphasort);
        if (k < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < k; i++) {
                _cleanup_free_ char *p = NULL;

                if (r >= 0 && asprintf(&p, "%s/%s", dir, entries[i]->d_name) < 0)
                        r = -ENOMEM;
                else if (r >= 0) {
                        r = run_file(p);
                        (*n)++;
                }
                free(entries[i]);
        }
        free(entries);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned n = 0;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode))
                        r = run_dir(argv[i], &n);
                else {
                        r = run_file(argv[i]);
                        n++;
                }
                if (r < 0)
                        return 1;
        }
        /* An empty or misnamed corpus must not pass as a test. */
        if (n == 0) {
                fprintf(stderr, "No inputs found.\n");
                return 1;
        }
        fprintf(stderr, "%u inputs replayed\n", n);
        return 0;
}
