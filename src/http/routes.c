/* http/routes: every room's route table, registered in one place. */
#include "http.h"

int routes_register_all(struct router *r, struct err *e) {
  int rc = router_add_table(r, sys_routes, sys_routes_count, e);
  if (!rc) rc = router_add_table(r, auth_routes, auth_routes_count, e);
  if (!rc) rc = router_add_table(r, auth_org_routes, auth_org_routes_count, e);
  if (!rc) rc = router_add_table(r, track_routes, track_routes_count, e);
  if (!rc) rc = router_add_table(r, track_more_routes, track_more_routes_count, e);

  if (!rc) rc = router_add_table(r, track_artifact_routes, track_artifact_routes_count, e);
  if (!rc) rc = router_add_table(r, registry_routes, registry_routes_count, e);
  if (!rc) rc = router_add_table(r, registry_upload_routes, registry_upload_routes_count, e);
  if (!rc) rc = router_add_table(r, registry_webhook_routes, registry_webhook_routes_count, e);
  if (!rc) rc = router_add_table(r, registry_gov_routes, registry_gov_routes_count, e);
  if (!rc) rc = router_add_table(r, serve_routes, serve_routes_count, e);
  /* later rooms add their tables here */
  if (rc) return rc;
  return sys_init(r, e);
}
