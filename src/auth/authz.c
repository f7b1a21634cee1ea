/* auth/authz: the one central authorization check every route goes through. */
#include "auth.h"

#include <string.h>

/* The permission a route needs, against who is calling; the first line that
 * matches decides:
 *
 *   need is not exactly one known scope ................. 403 (deny by
 *                                                          default: a route
 *                                                          without a
 *                                                          permission opens
 *                                                          nothing)
 *   anonymous, or no user behind the credential ......... 401
 *   credential lacks the scope (API keys) ................ 403
 *   key restricted to another project .................... 404
 *   key restricted to a project, no project, not read/
 *     predict (it could mint keys, orgs, projects
 *     outside its project) ............................... 403
 *   server admin ......................................... allowed
 *   no project (user-level route) ........................ allowed for
 *                                                          read/write/predict,
 *                                                          admin scope needs
 *                                                          a server admin
 *   project role NONE (also: no such project) ............ 404
 *   viewer: read (and predict) ........................... allowed
 *   editor: + write ...................................... allowed
 *   admin: + admin ....................................... allowed
 *   otherwise ............................................ 403
 *
 * Org-level routes (members, invitations) have no project: they check
 * auth_org_role themselves after this. A server admin passes for a project
 * that does not exist; the route's own lookup answers 404 then. */
int auth_authorize(struct auth *a, const struct auth_principal *p, unsigned need,
                   const char *project_id, struct err *e) {
  if (need == 0 || (need & (need - 1)) != 0 || (need & ~(unsigned)AUTH_SCOPE_ALL) != 0)
    return err_set(e, ERR_PERMISSION_DENIED, "this route declares no valid permission");
  if (!p || p->kind == AUTH_ANON || !p->user_id[0])
    return err_set(e, ERR_UNAUTHENTICATED, "authentication required");
  if ((p->scopes & need) != need)
    return err_set(e, ERR_PERMISSION_DENIED, "the credential lacks the scope this needs");
  bool scoped_project = project_id && *project_id;
  if (p->project_id[0] && scoped_project && strcmp(p->project_id, project_id) != 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "resource does not exist");
  if (p->project_id[0] && !scoped_project && (need & (AUTH_SCOPE_WRITE | AUTH_SCOPE_ADMIN)))
    return err_set(e, ERR_PERMISSION_DENIED,
                   "this key is restricted to one project and cannot do this outside it");
  if (p->is_admin) return 0;
  if (!scoped_project) {
    if (need & AUTH_SCOPE_ADMIN)
      return err_set(e, ERR_PERMISSION_DENIED, "server administrators only");
    return 0;
  }
  enum project_role r = auth_project_role(a, project_id, p->user_id);
  if (r == PROJECT_ROLE_NONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "resource does not exist");
  enum project_role want = PROJECT_ROLE_VIEWER;
  if (need & AUTH_SCOPE_ADMIN)
    want = PROJECT_ROLE_ADMIN;
  else if (need & AUTH_SCOPE_WRITE)
    want = PROJECT_ROLE_EDITOR;
  if (r < want)
    return err_set(e, ERR_PERMISSION_DENIED,
                   "your role in this project (%s) does not allow this; it needs %s",
                   project_role_name(r), project_role_name(want));
  return 0;
}
