/* Routed streams: the controller's router joins a client's data stream to the exporter that dials in */
#pragma once

#include "http-server.h"
#include "macro.h"

typedef struct Controller Controller;
typedef struct Router Router;

/* How long a client waits for the exporter to dial in before it gets Unavailable. */
#define ROUTER_DIAL_TIMEOUT_USEC (10 * USEC_PER_SEC)

/* Listens on c->config->router_listen (TLS with the controller's certificate). Logs its errors. */
int router_new(Controller *c, Router **ret);
/* Closes every routed stream and every stream waiting for its exporter. */
Router *router_free(Router *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Router *, router_free);

/* "IP:PORT" at which whoever reached the controller over req's connection dials the router:
 * router.advertise, else router.listen when it names an address, else the address of ours that req
 * came in on with the router's port. */
int router_advertise_for(Router *r, HttpRequest *req, char **ret);

/* The lease ended: its routed streams end too (the exporter cuts its side as well; this also covers
 * an exporter that no longer answers). */
void router_cut_lease(Router *r, const char *lease);
