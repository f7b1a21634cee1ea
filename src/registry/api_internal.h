/* registry/api_internal: what the registry's HTTP files (api.c, api_gov.c)
 * share. */
#ifndef KILN_REGISTRY_API_INTERNAL_H
#define KILN_REGISTRY_API_INTERNAL_H

#include "http/http.h"
#include "registry/registry.h"

/* The caller as the registry's domain sees them, for project_id: who they
 * are and whether the central check counts them a project admin. */
void reg_api_actor(struct req *rq, const char *project_id, struct registry_actor *a);

#endif
