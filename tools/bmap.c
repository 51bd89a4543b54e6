/* Block maps (bmaptool's .bmap XML): which blocks of a sparse image hold data, with checksums */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"

/* A hand-written reader for the small subset of XML that bmap files use: a prolog, comments,
 * elements with attributes and text. Anything else (DTDs, CDATA, entities, unknown elements)
 * is an error: the input comes from wherever the image came from. */

#define MAX_RANGES (64U * 1024 * 1024)

typedef struct Parser {
        const char *p, *end, *start;
        char *error;
        Bmap *bmap;
        size_t n_allocated;
        unsigned seen; /* bitmask of FIELD_* */
} Parser;

enum {
        FIELD_IMAGE_SIZE = 1U << 0,
        FIELD_BLOCK_SIZE = 1U << 1,
        FIELD_BLOCKS_COUNT = 1U << 2,
        FIELD_MAPPED_BLOCKS_COUNT = 1U << 3,
        FIELD_CHECKSUM_TYPE = 1U << 4,
        FIELD_FILE_CHECKSUM = 1U << 5,
        FIELD_BLOCK_MAP = 1U << 6,
};

static unsigned parser_line(const Parser *ps) {
        unsigned line = 1;

        for (const char *q = ps->start; q < ps->p && q < ps->end; q++)
                line += *q == '\n';
        return line;
}

_printf_(2, 3) static int fail(Parser *ps, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;

        if (ps->error)
                return -EINVAL;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg || asprintf(&ps->error, "line %u: %s", parser_line(ps), msg) < 0)
                ps->error = NULL;
        free(msg);
        return -EINVAL;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-' || c == '.' || c == ':';
}

static void skip_space(Parser *ps) {
        while (ps->p < ps->end && is_space(*ps->p))
                ps->p++;
}

static bool starts_with(const Parser *ps, const char *s) {
        size_t n = strlen(s);
        return (size_t) (ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0;
}

static int skip_past(Parser *ps, const char *terminator, const char *what) {
        size_t n = strlen(terminator);

        for (; ps->p + n <= ps->end; ps->p++)
                if (memcmp(ps->p, terminator, n) == 0) {
                        ps->p += n;
                        return 0;
                }
        return fail(ps, "unterminated %s", what);
}

/* Whitespace, comments and processing instructions between elements. */
static int skip_misc(Parser *ps) {
        int r;

        for (;;) {
                skip_space(ps);
                if (starts_with(ps, "<!--"))
                        r = skip_past(ps, "-->", "comment");
                else if (starts_with(ps, "<?"))
                        r = skip_past(ps, "?>", "processing instruction");
                else
                        return 0;
                if (r < 0)
                        return r;
        }
}

typedef struct Tag {
        char name[32];
        char chksum[80];
        bool has_chksum;
        bool closing, empty;
} Tag;

static int parse_name(Parser *ps, char *buf, size_t size) {
        size_t n = 0;

        while (ps->p < ps->end && is_name_char(*ps->p)) {
                if (n + 1 >= size)
                        return fail(ps, "name too long");
                buf[n++] = *ps->p++;
        }
        if (n == 0)
                return fail(ps, "expected a name");
        buf[n] = 0;
        return 0;
}

static int parse_tag(Parser *ps, Tag *t) {
        int r;

        *t = (Tag) {};
        if (ps->p >= ps->end || *ps->p != '<')
                return fail(ps, "expected '<'");
        ps->p++;
        if (ps->p < ps->end && *ps->p == '/') {
                t->closing = true;
                ps->p++;
        }
        r = parse_name(ps, t->name, sizeof t->name);
        if (r < 0)
                return r;
        for (;;) {
                char attr[32], quote;
                const char *value;
                size_t n;

                skip_space(ps);
                if (ps->p >= ps->end)
                        return fail(ps, "unterminated tag <%s>", t->name);
                if (*ps->p == '>') {
                        ps->p++;
                        return 0;
                }
                if (*ps->p == '/' && !t->closing && ps->p + 1 < ps->end && ps->p[1] == '>') {
                        t->empty = true;
                        ps->p += 2;
                        return 0;
                }
                if (t->closing)
                        return fail(ps, "unexpected text in </%s>", t->name);
                r = parse_name(ps, attr, sizeof attr);
                if (r < 0)
                        return r;
                skip_space(ps);
                if (ps->p >= ps->end || *ps->p != '=')
                        return fail(ps, "expected '=' after attribute %s", attr);
                ps->p++;
                skip_space(ps);
                if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\''))
                        return fail(ps, "expected a quoted value of attribute %s", attr);
                quote = *ps->p++;
                value = ps->p;
                while (ps->p < ps->end && *ps->p != quote && *ps->p != '<')
                        ps->p++;
                if (ps->p >= ps->end || *ps->p != quote)
                        return fail(ps, "unterminated value of attribute %s", attr);
                n = (size_t) (ps->p - value);
                ps->p++;
                if (strcmp(attr, "chksum") == 0) {
                        if (t->has_chksum)
                                return fail(ps, "duplicate attribute chksum");
                        if (n >= sizeof t->chksum)
                                return fail(ps, "chksum is too long");
                        memcpy(t->chksum, value, n);
                        t->chksum[n] = 0;
                        t->has_chksum = true;
                }
                /* Other attributes (bmap's version) are not needed. */
        }
}

/* The text of a leaf element up to its closing tag, trimmed. */
static int parse_text(Parser *ps, const char *name, const char **ret, size_t *ret_len) {
        const char *b, *e;
        Tag t;
        int r;

        b = ps->p;
        while (ps->p < ps->end && *ps->p != '<') {
                if (*ps->p == '&')
                        return fail(ps, "entities are not supported in <%s>", name);
                ps->p++;
        }
        e = ps->p;
        r = parse_tag(ps, &t);
        if (r < 0)
                return r;
        if (!t.closing || strcmp(t.name, name) != 0)
                return fail(ps, "expected </%s>", name);
        while (b < e && is_space(*b))
                b++;
        while (e > b && is_space(e[-1]))
                e--;
        *ret = b;
        *ret_len = (size_t) (e - b);
        return 0;
}

static int parse_u64(Parser *ps, const char *s, size_t n, const char *what, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0)
                return fail(ps, "%s is empty", what);
        for (size_t i = 0; i < n; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return fail(ps, "%s is not a number", what);
                d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return fail(ps, "%s is too large", what);
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

static int parse_sha256(Parser *ps, const char *s, size_t n, const char *what, uint8_t out[32]) {
        if (n != 64)
                return fail(ps, "%s is not a sha256 checksum (64 hex digits)", what);
        for (size_t i = 0; i < 64; i++) {
                char c = s[i];
                unsigned v;

                if (c >= '0' && c <= '9')
                        v = (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v = (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v = (unsigned) (c - 'A' + 10);
                else
                        return fail(ps, "%s is not a sha256 checksum (64 hex digits)", what);
                if (i % 2 == 0)
                        out[i / 2] = (uint8_t) (v << 4);
                else
                        out[i / 2] |= (uint8_t) v;
        }
        return 0;
}

static int add_range(Parser *ps, const char *s, size_t n, const char *chksum) {
        Bmap *b = ps->bmap;
        BmapRange range = {};
        const char *dash = memchr(s, '-', n);
        int r;

        if (dash) {
                r = parse_u64(ps, s, (size_t) (dash - s), "range start", &range.first);
                if (r < 0)
                        return r;
                r = parse_u64(ps, dash + 1, n - (size_t) (dash - s) - 1, "range end", &range.last);
        } else {
                r = parse_u64(ps, s, n, "range", &range.first);
                range.last = range.first;
        }
        if (r < 0)
                return r;
        if (range.last < range.first)
                return fail(ps, "range %" PRIu64 "-%" PRIu64 " ends before it starts", range.first, range.last);
        if (b->n_ranges > 0 && range.first <= b->ranges[b->n_ranges - 1].last)
                return fail(ps, "ranges overlap or are not in order");
        r = parse_sha256(ps, chksum, strlen(chksum), "chksum", range.sha256);
        if (r < 0)
                return r;
        if (b->n_ranges >= MAX_RANGES)
                return fail(ps, "too many ranges");
        if (b->n_ranges == ps->n_allocated) {
                size_t m = ps->n_allocated ? ps->n_allocated * 2 : 64;
                BmapRange *nr = realloc(b->ranges, m * sizeof *nr);

                if (!nr)
                        return -ENOMEM;
                b->ranges = nr;
                ps->n_allocated = m;
        }
        b->ranges[b->n_ranges++] = range;
        /* Cannot overflow: ranges are disjoint within uint64_t. */
        b->mapped_blocks += range.last - range.first + 1;
        return 0;
}

static int parse_block_map(Parser *ps) {
        int r;

        for (;;) {
                const char *text;
                size_t len;
                Tag t;

                r = skip_misc(ps);
                if (r < 0)
                        return r;
                r = parse_tag(ps, &t);
                if (r < 0)
                        return r;
                if (t.closing) {
                        if (strcmp(t.name, "BlockMap") != 0)
                                return fail(ps, "expected </BlockMap>");
                        return 0;
                }
                if (strcmp(t.name, "Range") != 0)
                        return fail(ps, "unexpected <%s> in <BlockMap>", t.name);
                if (t.empty)
                        return fail(ps, "empty <Range/>");
                if (!t.has_chksum)
                        return fail(ps, "<Range> without a chksum attribute");
                r = parse_text(ps, "Range", &text, &len);
                if (r < 0)
                        return r;
                r = add_range(ps, text, len, t.chksum);
                if (r < 0)
                        return r;
        }
}

static int parse_field(Parser *ps, const Tag *t) {
        static const struct {
                const char *name;
                unsigned bit;
        } fields[] = {
                { "ImageSize", FIELD_IMAGE_SIZE },
                { "BlockSize", FIELD_BLOCK_SIZE },
                { "BlocksCount", FIELD_BLOCKS_COUNT },
                { "MappedBlocksCount", FIELD_MAPPED_BLOCKS_COUNT },
                { "ChecksumType", FIELD_CHECKSUM_TYPE },
                { "BmapFileChecksum", FIELD_FILE_CHECKSUM },
                { "BlockMap", FIELD_BLOCK_MAP },
        };
        Bmap *b = ps->bmap;
        unsigned bit = 0;
        const char *text;
        size_t len;
        uint64_t mapped;
        int r;

        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
                if (strcmp(t->name, fields[i].name) == 0)
                        bit = fields[i].bit;
        if (bit == 0)
                return fail(ps, "unknown element <%s>", t->name);
        if (ps->seen & bit)
                return fail(ps, "duplicate <%s>", t->name);
        ps->seen |= bit;
        if (bit == FIELD_BLOCK_MAP && t->empty)
                return 0; /* an image without data */
        if (t->empty)
                return fail(ps, "empty <%s/>", t->name);

        if (bit == FIELD_BLOCK_MAP)
                return parse_block_map(ps);

        if (bit == FIELD_FILE_CHECKSUM) {
                skip_space(ps);
                b->file_checksum_offset = (size_t) (ps->p - ps->start);
        }
        r = parse_text(ps, t->name, &text, &len);
        if (r < 0)
                return r;
        switch (bit) {
        case FIELD_IMAGE_SIZE:
                return parse_u64(ps, text, len, "ImageSize", &b->image_size);
        case FIELD_BLOCK_SIZE:
                return parse_u64(ps, text, len, "BlockSize", &b->block_size);
        case FIELD_BLOCKS_COUNT:
                return parse_u64(ps, text, len, "BlocksCount", &b->blocks_count);
        case FIELD_MAPPED_BLOCKS_COUNT:
                return parse_u64(ps, text, len, "MappedBlocksCount", &mapped);
        case FIELD_CHECKSUM_TYPE:
                if (len != 6 || memcmp(text, "sha256", 6) != 0)
                        return fail(ps, "ChecksumType '%.*s' is not supported; only sha256 (bmap format 2)",
                                    (int) MIN(len, (size_t) 32), text);
                return 0;
        case FIELD_FILE_CHECKSUM:
                b->has_file_checksum = true;
                return parse_sha256(ps, text, len, "BmapFileChecksum", b->file_checksum);
        }
        return 0;
}

static int parse_document(Parser *ps) {
        Tag t;
        int r;

        r = skip_misc(ps);
        if (r < 0)
                return r;
        if (starts_with(ps, "<!"))
                return fail(ps, "DTDs and CDATA are not supported");
        r = parse_tag(ps, &t);
        if (r < 0)
                return r;
        if (t.closing || t.empty || strcmp(t.name, "bmap") != 0)
                return fail(ps, "expected <bmap>: not a block map");

        for (;;) {
                r = skip_misc(ps);
                if (r < 0)
                        return r;
                if (ps->p < ps->end && *ps->p != '<')
                        return fail(ps, "unexpected text in <bmap>");
                r = parse_tag(ps, &t);
                if (r < 0)
                        return r;
                if (t.closing) {
                        if (strcmp(t.name, "bmap") != 0)
                                return fail(ps, "expected </bmap>");
                        break;
                }
                r = parse_field(ps, &t);
                if (r < 0)
                        return r;
        }
        r = skip_misc(ps);
        if (r < 0)
                return r;
        if (ps->p != ps->end)
                return fail(ps, "text after </bmap>");
        return 0;
}

static int check(Parser *ps) {
        Bmap *b = ps->bmap;
        unsigned required = FIELD_IMAGE_SIZE | FIELD_BLOCK_SIZE | FIELD_BLOCKS_COUNT | FIELD_CHECKSUM_TYPE |
                            FIELD_BLOCK_MAP;

        if ((ps->seen & required) != required)
                return fail(ps, "a block map needs ImageSize, BlockSize, BlocksCount, ChecksumType and BlockMap");
        if (b->block_size == 0 || b->block_size > (64U << 20) || (b->block_size & (b->block_size - 1)))
                return fail(ps, "BlockSize %" PRIu64 " is not a power of two up to 64MiB", b->block_size);
        if (b->image_size > UINT64_MAX - b->block_size)
                return fail(ps, "ImageSize %" PRIu64 " is too large", b->image_size);
        if (b->blocks_count != b->image_size / b->block_size + (b->image_size % b->block_size != 0))
                return fail(ps, "BlocksCount %" PRIu64 " does not match ImageSize %" PRIu64 " and BlockSize %" PRIu64,
                            b->blocks_count, b->image_size, b->block_size);
        if (b->n_ranges > 0 && b->ranges[b->n_ranges - 1].last >= b->blocks_count)
                return fail(ps, "a range goes past the end of the image (block %" PRIu64 " of %" PRIu64 ")",
                            b->ranges[b->n_ranges - 1].last, b->blocks_count);
        return 0;
}

int bmap_parse(const char *data, size_t size, Bmap **ret, char **ret_error) {
        Parser ps = { .p = data, .end = data + size, .start = data };
        int r;

        *ret_error = NULL;
        ps.bmap = calloc(1, sizeof *ps.bmap);
        if (!ps.bmap)
                return -ENOMEM;
        if (memchr(data, 0, size))
                r = fail(&ps, "the file contains NUL bytes: not a block map");
        else
                r = parse_document(&ps);
        if (r >= 0)
                r = check(&ps);
        /* MappedBlocksCount is informational: the ranges say what is mapped. */
        if (r < 0) {
                bmap_free(ps.bmap);
                if (r == -EINVAL && !ps.error)
                        r = -ENOMEM;
                *ret_error = ps.error;
                return r;
        }
        *ret = ps.bmap;
        return 0;
}

Bmap *bmap_free(Bmap *b) {
        if (!b)
                return NULL;
        free(b->ranges);
        free(b);
        return NULL;
}

uint64_t bmap_range_offset(const Bmap *b, const BmapRange *r) {
        return r->first * b->block_size;
}

uint64_t bmap_range_length(const Bmap *b, const BmapRange *r) {
        uint64_t start = r->first * b->block_size, end = (r->last + 1) * b->block_size;

        return MIN(end, b->image_size) - start;
}
