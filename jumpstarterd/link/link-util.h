/* Exporter link helpers: NDJSON line splitting, watch line parsing, reconnect backoff, RFC 3339 times */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "macro.h"

/* A watch line longer than this ends the link: the controller's lines are small. */
#define LINK_LINE_MAX (1024 * 1024)

/* Reconnect backoff: 0.5 s doubling to 30 s. */
#define LINK_BACKOFF_MIN_USEC (500 * USEC_PER_MSEC)
#define LINK_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* The attempt number at which the backoff reaches its maximum. */
#define LINK_BACKOFF_ATTEMPT_MAX 6

/* Cuts a byte stream into lines; chunk and read boundaries mean nothing. */
typedef struct NdjsonSplitter {
        char *buf;
        size_t size, allocated;
        size_t max_line;
} NdjsonSplitter;

/* A complete line, without its '\n' (and NUL-terminated). A negative return stops the feed. */
typedef int (*NdjsonLineFunc)(const char *line, size_t len, void *userdata);

void ndjson_splitter_init(NdjsonSplitter *s, size_t max_line);
void ndjson_splitter_done(NdjsonSplitter *s);
/* Forgets a partial line (after the stream broke off). */
void ndjson_splitter_reset(NdjsonSplitter *s);
/* Calls func for each complete non-empty line in order. Returns 0, func's first negative return, -EMSGSIZE for a
 * line longer than max_line, or -ENOMEM. */
int ndjson_splitter_feed(NdjsonSplitter *s, const void *data, size_t size, NdjsonLineFunc func, void *userdata);

/* The delay before reconnect attempt number attempt (0 = the first after a loss): 0.5 s << attempt, at most 30 s,
 * less a jitter of up to a fifth chosen by random (0..UINT32_MAX), so that exporters that lost the same
 * controller do not all come back in the same instant. */
uint64_t link_backoff_usec(unsigned attempt, uint32_t random);

/* "2026-11-29T10:00:00Z", optionally with a fraction of a second, or with "+00:00" for "Z". -EINVAL otherwise. */
int parse_rfc3339(const char *s, uint64_t *ret_usec);

typedef enum LinkLineType {
        LINK_LINE_LEASES, /* the active leases of this exporter */
        LINK_LINE_LEASE,  /* one lease changed */
        LINK_LINE_KEYS,   /* the controller's public keys */
        LINK_LINE_DIAL,   /* connect to the router for a routed stream */
        LINK_LINE_PING,
        LINK_LINE_OTHER,  /* a type this version does not know: ignored */
        _LINK_LINE_TYPE_MAX,
        _LINK_LINE_TYPE_INVALID = -EINVAL,
} LinkLineType;

typedef enum LinkLeaseEvent {
        LINK_LEASE_ASSIGNED,
        LINK_LEASE_EXTENDED,
        LINK_LEASE_ENDED,
        _LINK_LEASE_EVENT_MAX,
        _LINK_LEASE_EVENT_INVALID = -EINVAL,
} LinkLeaseEvent;

typedef struct LinkLease {
        char *name;
        char *dut;
        char *exporter; /* NULL if the line does not say */
        uint64_t end_usec; /* CLOCK_REALTIME; 0 for an ended lease without an end */
} LinkLease;

typedef struct LinkLine {
        LinkLineType type;
        LinkLeaseEvent event;     /* LINK_LINE_LEASE */
        LinkLease *leases;        /* LINK_LINE_LEASES: all; LINK_LINE_LEASE: the one */
        size_t n_leases;
        json_t *keys;             /* LINK_LINE_KEYS: the array of {"kid", "state", "publicKey"} */
        char *issuer;             /* LINK_LINE_KEYS: optional */
        char *dial_id, *dial_router, *dial_token; /* LINK_LINE_DIAL */
} LinkLine;

/* Parses one watch line. -EBADMSG with a message in *ret_error (caller frees) for a line that is not what
 * docs/protocol.md says; -ENOMEM. */
int link_line_parse(const char *line, size_t len, LinkLine *ret, char **ret_error);
void link_line_done(LinkLine *l);
