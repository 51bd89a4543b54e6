/* jmp storage flash: write an image to a DUT's storage through the file view */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "bmap.h"
#include "config.h"
#include "jmp.h"
#include "local-instance.h"
#include "log.h"
#include "macro.h"

#define IO_SIZE (4U << 20)

static const char usage[] =
        "Usage: jmp storage flash DUT IMAGE [--bmap FILE] [--no-verify] [--mountpoint DIR]\n"
        "\n"
        "Writes IMAGE to the DUT's storage through DIR/DUT/storage (DIR: the local mode's mount\n"
        "point, else /jmp). IMAGE may be compressed with gzip, xz or zstd. With --bmap (a block map\n"
        "made by 'bmaptool create'), only the mapped blocks are written and their checksums are\n"
        "checked. Then what was written is read back and compared, unless --no-verify; the storage\n"
        "is synced before jmp exits 0. The DUT must be powered off.\n";

static volatile sig_atomic_t arg_interrupted;

static void on_signal(int sig) {
        arg_interrupted = sig;
}

static int interrupted(void) {
        if (!arg_interrupted)
                return 0;
        fprintf(stderr, "\njmp: interrupted; the storage holds a partial image.\n");
        return -EINTR;
}

/* Progress on stderr: a bar redrawn in place on a terminal, a line every few seconds otherwise. */
typedef struct Progress {
        const char *phase;
        uint64_t total, done;  /* total 0: unknown */
        double start, last;
        bool tty;
} Progress;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void progress_begin(Progress *p, const char *phase, uint64_t total) {
        *p = (Progress) { .phase = phase, .total = total, .start = now(), .tty = isatty(STDERR_FILENO) };
        p->last = p->start;
}

static void progress_print(Progress *p, bool final) {
        double t = now(), rate = p->done / MAX(t - p->start, 1e-6) / 1e6;
        double mib = (double) p->done / (1 << 20);

        if (!final && t - p->last < (p->tty ? 0.2 : 2.0))
                return;
        p->last = t;
        if (p->tty) {
                char bar[31];
                unsigned fill = p->total ? (unsigned) (30 * MIN(p->done, p->total) / p->total) : 0;

                for (unsigned i = 0; i < 30; i++)
                        bar[i] = i < fill ? '#' : '-';
                bar[30] = 0;
                if (p->total)
                        fprintf(stderr, "\r%-9s [%s] %3u%% %9.1f MiB %8.1f MB/s", p->phase, bar,
                                (unsigned) (100 * MIN(p->done, p->total) / p->total), mib, rate);
                else
                        fprintf(stderr, "\r%-9s %9.1f MiB %8.1f MB/s", p->phase, mib, rate);
                if (final)
                        fputc('\n', stderr);
        } else if (p->total)
                fprintf(stderr, "%s: %.1f of %.1f MiB (%u%%), %.1f MB/s\n", p->phase, mib,
                        (double) p->total / (1 << 20), (unsigned) (100 * MIN(p->done, p->total) / p->total), rate);
        else
                fprintf(stderr, "%s: %.1f MiB, %.1f MB/s\n", p->phase, mib, rate);
}

/* The image as a stream of bytes, decompressed on the fly by its magic number. */
typedef enum Compression { COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_XZ, COMPRESSION_ZSTD } Compression;

typedef struct Source {
        const char *path;
        int fd;
        Compression compression;
        uint64_t offset;  /* of the next byte of the decompressed image */
        uint64_t file_size;
        uint8_t *in;
        size_t in_pos, in_len;
        bool stream; /* not seekable */
        bool in_eof, stream_end, zstd_in_frame;
        z_stream z;
        lzma_stream lz;
        ZSTD_DStream *zs;
} Source;

static int source_open(Source *s, const char *path) {
        uint8_t magic[6] = {};
        struct stat st;
        ssize_t n;

        *s = (Source) { .path = path, .fd = -EBADF, .lz = LZMA_STREAM_INIT };
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0)
                return log_error_errno(errno, "Failed to open image %s: %m", path);
        if (fstat(s->fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat image %s: %m", path);
        s->file_size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
        s->in = malloc(IO_SIZE);
        if (!s->in)
                return log_oom();
        if (S_ISREG(st.st_mode)) {
                n = pread(s->fd, magic, sizeof magic, 0);
                if (n < 0)
                        return log_error_errno(errno, "Failed to read image %s: %m", path);
        } else {
                /* A pipe (xzcat img.xz | jmp storage flash DUT /dev/stdin): the magic stays in the
                 * input buffer. */
                s->stream = true;
                while (s->in_len < sizeof magic && !s->in_eof) {
                        n = read(s->fd, s->in + s->in_len, IO_SIZE - s->in_len);
                        if (n < 0 && errno == EINTR && !arg_interrupted)
                                continue;
                        if (n < 0)
                                return errno == EINTR ? interrupted()
                                                      : log_error_errno(errno, "Failed to read image %s: %m", path);
                        s->in_len += (size_t) n;
                        s->in_eof = n == 0;
                }
                n = (ssize_t) MIN(s->in_len, sizeof magic);
                memcpy(magic, s->in, (size_t) n);
        }

        if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
                s->compression = COMPRESSION_GZIP;
                if (inflateInit2(&s->z, 15 + 32) != Z_OK)
                        return log_error_errno(ENOMEM, "Failed to set up gzip decompression.");
        } else if (n >= 6 && memcmp(magic, "\xfd" "7zXZ\0", 6) == 0) {
                s->compression = COMPRESSION_XZ;
                if (lzma_stream_decoder(&s->lz, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
                        return log_error_errno(ENOMEM, "Failed to set up xz decompression.");
        } else if (n >= 4 && memcmp(magic, "\x28\xb5\x2f\xfd", 4) == 0) {
                s->compression = COMPRESSION_ZSTD;
                s->zs = ZSTD_createDStream();
                if (!s->zs)
                        return log_error_errno(ENOMEM, "Failed to set up zstd decompression.");
        }
        return 0;
}

static void source_close(Source *s) {
        if (s->compression == COMPRESSION_GZIP)
                inflateEnd(&s->z);
        lzma_end(&s->lz);
        ZSTD_freeDStream(s->zs);
        free(s->in);
        safe_close(s->fd);
}

static int source_fill(Source *s) {
        ssize_t n;

        if (s->in_pos < s->in_len || s->in_eof)
                return 0;
        do
                n = read(s->fd, s->in, IO_SIZE);
        while (n < 0 && errno == EINTR && !arg_interrupted);
        if (n < 0)
                return errno == EINTR ? interrupted() : log_error_errno(errno, "Failed to read image %s: %m", s->path);
        s->in_pos = 0;
        s->in_len = (size_t) n;
        s->in_eof = n == 0;
        return 0;
}

/* Reads up to n bytes; *ret is 0 only at the end of the image. */
static int source_read(Source *s, uint8_t *buf, size_t n, size_t *ret) {
        size_t got = 0;
        int r;

        if (s->compression == COMPRESSION_NONE && s->stream) {
                r = source_fill(s);
                if (r < 0)
                        return r;
                got = MIN(n, s->in_len - s->in_pos);
                memcpy(buf, s->in + s->in_pos, got);
                s->in_pos += got;
                s->offset += got;
                *ret = got;
                return 0;
        }
        if (s->compression == COMPRESSION_NONE) {
                ssize_t k = pread(s->fd, buf, n, (off_t) s->offset);

                if (k < 0)
                        return errno == EINTR && arg_interrupted ? interrupted()
                                                                 : log_error_errno(errno, "Failed to read image %s: %m", s->path);
                s->offset += (uint64_t) k;
                *ret = (size_t) k;
                return 0;
        }

        while (got == 0 && !s->stream_end) {
                r = source_fill(s);
                if (r < 0)
                        return r;
                switch (s->compression) {
                case COMPRESSION_GZIP:
                        s->z.next_in = s->in + s->in_pos;
                        s->z.avail_in = (uInt) (s->in_len - s->in_pos);
                        s->z.next_out = buf;
                        s->z.avail_out = (uInt) n;
                        r = inflate(&s->z, Z_NO_FLUSH);
                        s->in_pos = s->in_len - s->z.avail_in;
                        got = n - s->z.avail_out;
                        if (r == Z_STREAM_END) {
                                /* Concatenated members, as pigz and cat make them. */
                                if (source_fill(s) < 0)
                                        return -EIO;
                                if (s->in_eof)
                                        s->stream_end = true;
                                else
                                        inflateReset(&s->z);
                        } else if (r == Z_BUF_ERROR && s->in_eof && got == 0)
                                return log_error_errno(EIO, "Image %s is truncated (gzip stream ends early).", s->path);
                        else if (r != Z_OK && r != Z_BUF_ERROR)
                                return log_error_errno(EIO, "Image %s is not valid gzip data: %s", s->path,
                                                       s->z.msg ?: "corrupt");
                        break;
                case COMPRESSION_XZ: {
                        lzma_ret lr;

                        s->lz.next_in = s->in + s->in_pos;
                        s->lz.avail_in = s->in_len - s->in_pos;
                        s->lz.next_out = buf;
                        s->lz.avail_out = n;
                        lr = lzma_code(&s->lz, s->in_eof ? LZMA_FINISH : LZMA_RUN);
                        s->in_pos = s->in_len - s->lz.avail_in;
                        got = n - s->lz.avail_out;
                        if (lr == LZMA_STREAM_END)
                                s->stream_end = true;
                        else if (lr != LZMA_OK)
                                return log_error_errno(EIO, "Image %s is not valid xz data (lzma error %i).", s->path,
                                                       (int) lr);
                        else if (s->in_eof && got == 0)
                                return log_error_errno(EIO, "Image %s is truncated (xz stream ends early).", s->path);
                        break;
                }
                case COMPRESSION_ZSTD: {
                        ZSTD_inBuffer in = { s->in + s->in_pos, s->in_len - s->in_pos, 0 };
                        ZSTD_outBuffer out = { buf, n, 0 };
                        size_t zr;

                        /* At the end of the input the decoder may still hold output. */
                        zr = ZSTD_decompressStream(s->zs, &out, &in);
                        if (ZSTD_isError(zr))
                                return log_error_errno(EIO, "Image %s is not valid zstd data: %s", s->path,
                                                       ZSTD_getErrorName(zr));
                        s->in_pos += in.pos;
                        got = out.pos;
                        /* 0 at the end of a frame; an idle call at the end of the input asks for
                         * the next frame's header, which does not mean the last one is cut. */
                        if (in.pos > 0 || out.pos > 0)
                                s->zstd_in_frame = zr != 0;
                        if (s->in_eof && got == 0) {
                                if (s->zstd_in_frame)
                                        return log_error_errno(EIO, "Image %s is truncated (zstd frame ends early).",
                                                               s->path);
                                s->stream_end = true;
                        }
                        break;
                }
                default:
                        break;
                }
        }
        s->offset += got;
        *ret = got;
        return 0;
}

/* Moves forward to offset: a seek in a plain image, decompress and drop in a compressed one. */
static int source_skip_to(Source *s, uint64_t offset, uint8_t *scratch) {
        while (s->offset < offset) {
                size_t n;
                int r;

                if (s->compression == COMPRESSION_NONE && !s->stream) {
                        s->offset = offset;
                        return 0;
                }
                r = interrupted();
                if (r < 0)
                        return r;
                r = source_read(s, scratch, (size_t) MIN((uint64_t) IO_SIZE, offset - s->offset), &n);
                if (r < 0)
                        return r;
                if (n == 0)
                        return log_error_errno(EIO, "Image %s ends at %" PRIu64 " bytes, before the block map's next range.",
                                               s->path, s->offset);
        }
        return 0;
}

static int write_all(int fd, const char *target, const uint8_t *buf, size_t n, uint64_t offset) {
        while (n > 0) {
                ssize_t k = pwrite(fd, buf, n, (off_t) offset);

                if (k < 0 && errno == EINTR) {
                        int r = interrupted();
                        if (r < 0)
                                return r;
                        continue;
                }
                if (k < 0 && errno == ENOSPC)
                        return log_error_errno(ENOSPC, "The image does not fit: %s ends at %" PRIu64 " bytes.", target,
                                               offset);
                if (k < 0)
                        return log_error_errno(errno, "Failed to write %s at %" PRIu64 ": %m", target, offset);
                if (k == 0)
                        return log_error_errno(ENOSPC, "The image does not fit: %s ends at %" PRIu64 " bytes.", target,
                                               offset);
                buf += k;
                n -= (size_t) k;
                offset += (uint64_t) k;
        }
        return 0;
}

typedef struct Extent {
        uint64_t offset, length;
        uint8_t expected[32];  /* from the block map */
        uint8_t written[32];   /* of what was written */
} Extent;

static void hex(const uint8_t d[32], char out[65]) {
        for (size_t i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Reads extent back from the storage and compares it with what was written. */
static int verify_extent(int fd, const char *target, const Extent *e, uint8_t *buf, EVP_MD_CTX *md, Progress *p) {
        uint8_t digest[32];
        uint64_t done = 0;

        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        while (done < e->length) {
                ssize_t k = pread(fd, buf, (size_t) MIN((uint64_t) IO_SIZE, e->length - done),
                                  (off_t) (e->offset + done));
                if (k < 0 && errno == EINTR) {
                        int r = interrupted();
                        if (r < 0)
                                return r;
                        continue;
                }
                if (k < 0)
                        return log_error_errno(errno, "Failed to read back %s at %" PRIu64 ": %m", target,
                                               e->offset + done);
                if (k == 0)
                        return log_error_errno(EIO, "%s ends at %" PRIu64 " while reading back.", target, e->offset + done);
                EVP_DigestUpdate(md, buf, (size_t) k);
                done += (uint64_t) k;
                p->done += (uint64_t) k;
                progress_print(p, false);
        }
        EVP_DigestFinal_ex(md, digest, NULL);
        if (memcmp(digest, e->written, 32) != 0)
                return log_error_errno(EIO, "Verification failed: %s reads back differently at bytes %" PRIu64
                                       "-%" PRIu64 " than what was written.", target, e->offset,
                                       e->offset + e->length - 1);
        return 0;
}

static int read_bmap(const char *path, Bmap **ret) {
        _cleanup_free_ char *data = NULL, *error = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t got = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open block map %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat block map %s: %m", path);
        if (!S_ISREG(st.st_mode) || st.st_size > (64 << 20))
                return log_error_errno(EINVAL, "Block map %s is not a regular file of at most 64MiB.", path);
        data = malloc((size_t) st.st_size + 1);
        if (!data)
                return log_oom();
        while (got < (size_t) st.st_size) {
                ssize_t k = read(fd, data + got, (size_t) st.st_size - got);
                if (k < 0)
                        return log_error_errno(errno, "Failed to read block map %s: %m", path);
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        r = bmap_parse(data, got, ret, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "%s:%s", path, error ?: " invalid block map");

        if ((*ret)->has_file_checksum) {
                uint8_t digest[32];
                char want[65], have[65];

                /* The checksum covers the file with its own digits zeroed. */
                memset(data + (*ret)->file_checksum_offset, '0', 64);
                EVP_Digest(data, got, digest, NULL, EVP_sha256(), NULL);
                if (memcmp(digest, (*ret)->file_checksum, 32) != 0) {
                        hex((*ret)->file_checksum, want);
                        hex(digest, have);
                        *ret = bmap_free(*ret);
                        return log_error_errno(EBADMSG, "Block map %s is corrupt: its checksum is %s, it says %s.", path,
                                               have, want);
                }
        }
        return 0;
}

static int flash(const char *target, const char *image, const char *bmap_path, bool verify) {
        _cleanup_(bmap_freep) Bmap *bmap = NULL;
        _cleanup_free_ Extent *extents = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        EVP_MD_CTX *md = NULL;
        Source src = { .fd = -EBADF };
        size_t n_extents = 0;
        uint64_t storage_size, total = 0, written = 0;
        struct stat st;
        Progress p;
        double t0 = now();
        int r;

        if (bmap_path) {
                r = read_bmap(bmap_path, &bmap);
                if (r < 0)
                        return r;
        }
        r = source_open(&src, image);
        if (r < 0)
                goto finish;

        fd = open(target, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                if (r == -EBUSY)
                        log_error_errno(r, "Failed to open %s: %m. The DUT must be powered off (and its storage "
                                        "not in use on the exporter) while it is flashed.", target);
                else if (r == -ENOENT)
                        log_error_errno(r, "Failed to open %s: %m. Is the DUT's name right, and the file view "
                                        "mounted there (--mountpoint)?", target);
                else
                        log_error_errno(r, "Failed to open %s: %m", target);
                goto finish;
        }
        if (fstat(fd, &st) < 0) {
                r = log_error_errno(errno, "Failed to stat %s: %m", target);
                goto finish;
        }
        storage_size = (uint64_t) st.st_size;

        buf = malloc(IO_SIZE);
        md = EVP_MD_CTX_new();
        if (!buf || !md) {
                r = log_oom();
                goto finish;
        }

        if (bmap) {
                if (bmap->image_size > storage_size) {
                        r = log_error_errno(ENOSPC, "The image (%" PRIu64 " bytes) is larger than the storage (%" PRIu64
                                            " bytes).", bmap->image_size, storage_size);
                        goto finish;
                }
                if (src.compression == COMPRESSION_NONE && src.file_size && src.file_size != bmap->image_size) {
                        r = log_error_errno(EINVAL, "Image %s has %" PRIu64 " bytes, its block map says %" PRIu64 ".",
                                            image, src.file_size, bmap->image_size);
                        goto finish;
                }
                extents = calloc(MAX(bmap->n_ranges, (size_t) 1), sizeof *extents);
                if (!extents) {
                        r = log_oom();
                        goto finish;
                }
                for (size_t i = 0; i < bmap->n_ranges; i++) {
                        extents[i].offset = bmap_range_offset(bmap, &bmap->ranges[i]);
                        extents[i].length = bmap_range_length(bmap, &bmap->ranges[i]);
                        memcpy(extents[i].expected, bmap->ranges[i].sha256, 32);
                        total += extents[i].length;
                }
                n_extents = bmap->n_ranges;
        } else {
                if (src.compression == COMPRESSION_NONE && src.file_size > storage_size) {
                        r = log_error_errno(ENOSPC, "The image (%" PRIu64 " bytes) is larger than the storage (%" PRIu64
                                            " bytes).", src.file_size, storage_size);
                        goto finish;
                }
                extents = calloc(1, sizeof *extents);
                if (!extents) {
                        r = log_oom();
                        goto finish;
                }
                /* One extent as long as the stream turns out to be. */
                extents[0].length = UINT64_MAX;
                n_extents = 1;
                total = src.compression == COMPRESSION_NONE ? src.file_size : 0;
        }

        progress_begin(&p, "Writing", total);
        for (size_t i = 0; i < n_extents; i++) {
                Extent *e = &extents[i];
                uint64_t done = 0;

                r = source_skip_to(&src, e->offset, buf);
                if (r < 0)
                        goto finish;
                EVP_DigestInit_ex(md, EVP_sha256(), NULL);
                while (done < e->length) {
                        size_t n;

                        r = interrupted();
                        if (r < 0)
                                goto finish;
                        r = source_read(&src, buf, (size_t) MIN((uint64_t) IO_SIZE, e->length - done), &n);
                        if (r < 0)
                                goto finish;
                        if (n == 0) {
                                if (!bmap)
                                        break;
                                r = log_error_errno(EIO, "Image %s ends at %" PRIu64 " bytes, inside a range of its "
                                                    "block map.", image, src.offset);
                                goto finish;
                        }
                        r = write_all(fd, target, buf, n, e->offset + done);
                        if (r < 0)
                                goto finish;
                        /* Hashing costs as much as the copy: only when something will check it. */
                        if (bmap || verify)
                                EVP_DigestUpdate(md, buf, n);
                        done += n;
                        p.done += n;
                        progress_print(&p, false);
                }
                e->length = done;
                EVP_DigestFinal_ex(md, e->written, NULL);
                if (bmap && memcmp(e->written, e->expected, 32) != 0) {
                        char want[65], have[65];

                        hex(e->expected, want);
                        hex(e->written, have);
                        r = log_error_errno(EBADMSG, "Checksum mismatch in blocks %" PRIu64 "-%" PRIu64 ": the image has "
                                            "%s, the block map says %s. The image or its block map is corrupt.",
                                            bmap->ranges[i].first, bmap->ranges[i].last, have, want);
                        goto finish;
                }
                written += done;
        }
        progress_print(&p, true);

        /* What the storage reports here is what the DUT will get. */
        for (;;) {
                if (fsync(fd) >= 0)
                        break;
                if (errno == EINTR && !arg_interrupted)
                        continue;
                r = errno == EINTR ? interrupted() : log_error_errno(errno, "Failed to sync %s: %m", target);
                goto finish;
        }

        if (verify) {
                progress_begin(&p, "Verifying", written);
                for (size_t i = 0; i < n_extents; i++) {
                        r = verify_extent(fd, target, &extents[i], buf, md, &p);
                        if (r < 0)
                                goto finish;
                }
                progress_print(&p, true);
        }

        r = close(TAKE_FD(fd));
        if (r < 0) {
                r = log_error_errno(errno, "Failed to close %s: %m", target);
                goto finish;
        }
        fprintf(stderr, "Flashed %s: %.1f MiB written%s in %.2f s%s.\n", image, (double) written / (1 << 20),
                bmap ? " (the mapped blocks)" : "", now() - t0, verify ? ", verified" : ", not verified");
        r = 0;
finish:
        EVP_MD_CTX_free(md);
        source_close(&src);
        return r;
}

static int verb_storage_flash(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "bmap", required_argument, NULL, 'b' },
                { "mountpoint", required_argument, NULL, 'm' },
                { "no-verify", no_argument, NULL, 'n' },
                {}
        };
        _cleanup_(local_instance_freep) LocalInstance *inst = NULL;
        _cleanup_free_ char *target = NULL;
        const char *mountpoint = NULL, *bmap = NULL, *dut, *image;
        struct sigaction sa = { .sa_handler = on_signal };
        bool verify = true;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "hb:m:n", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'b':
                        bmap = optarg;
                        break;
                case 'm':
                        mountpoint = optarg;
                        break;
                case 'n':
                        verify = false;
                        break;
                default:
                        return 2;
                }
        if (argc - optind != 2) {
                fputs(usage, stderr);
                return 2;
        }
        dut = argv[optind];
        image = argv[optind + 1];
        if (!dut_name_is_valid(dut)) {
                fprintf(stderr, "jmp: '%s' is not a valid DUT name.\n", dut);
                return 2;
        }

        if (!mountpoint) {
                r = local_instance_find(NULL, &inst);
                mountpoint = r >= 0 ? inst->mountpoint : DEFAULT_MOUNTPOINT;
        }
        if (asprintf(&target, "%s/%s/storage", mountpoint, dut) < 0)
                return log_oom(), 1;

        /* No SA_RESTART: a write into the file view is interrupted, and the flash stops there. */
        sigemptyset(&sa.sa_mask);
        (void) sigaction(SIGINT, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGHUP, &sa, NULL);

        r = flash(target, image, bmap, verify);
        if (r < 0) {
                fprintf(stderr, "jmp: flashing %s failed.\n", dut);
                return arg_interrupted ? 128 + arg_interrupted : 1;
        }
        return 0;
}

int verb_storage(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                fputs(usage, argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "flash"))
                return verb_storage_flash(argc - 1, argv + 1);
        fprintf(stderr, "jmp: unknown storage command '%s'. Run 'jmp storage --help'.\n", argv[1]);
        return 2;
}
