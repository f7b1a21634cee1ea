/* track/api_internal: what the tracking room's HTTP files share. */
#ifndef KILN_TRACK_API_INTERNAL_H
#define KILN_TRACK_API_INTERNAL_H

#include "http/http.h"

/* The project a call acts in (api.c): the route table's locator, and the
 * handler's view (NULL with the reply set when there is none). */
const char *track_api_locate(struct req *rq, bool *missing);
const char *track_api_project(struct req *rq, struct reply *rp);

#endif
