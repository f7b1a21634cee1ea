/* registry/lineage: where a model version came from, as a typed graph —
 * the version, its source run, the datasets that run consumed, the logged
 * model it was registered from and the experiments they were logged in.
 * Read-only; pieces that no longer exist become "missing" nodes. */
#include "registry/internal.h"
#include "track/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Node and edge vocabulary (docs/registry.md). Later rooms (deployments,
 * datasets) add their own types; consumers must ignore types they do not
 * know. */
#define N_VERSION "model_version"
#define N_RUN "run"
#define N_DATASET "dataset"
#define N_LOGGED_MODEL "logged_model"
#define N_EXPERIMENT "experiment"
#define E_PRODUCED_BY "produced_by"         /* version|logged model -> the run that made it */
#define E_CONSUMED "consumed"               /* run -> a dataset it logged as input */
#define E_LOGGED_IN "logged_in"             /* run|logged model -> its experiment */
#define E_REGISTERED_FROM "registered_from" /* version -> the logged model it was made from */

struct graph {
  json_t *nodes, *edges;
  json_t *seen; /* node id -> true */
};

static const char *str_at(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

static void copy_keys(json_t *to, json_t *from, const char *const *keys) {
  for (; *keys; keys++) {
    json_t *v = json_object_get(from, *keys);
    if (v && !json_is_null(v)) json_object_set(to, *keys, v);
  }
}

/* Adds the node once; returns its id (owned by the graph), NULL on OOM. */
static const char *node(struct graph *g, const char *type, const char *key, const char *label, json_t *attrs,
                        bool missing) {
  char id[4 * REGISTRY_MAX_NAME_LEN + 640];
  snprintf(id, sizeof id, "%s:%s", type, key);
  json_t *kept = json_object_get(g->seen, id);
  if (kept) {
    json_decref(attrs);
    return json_string_value(kept);
  }
  json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "type", type, "label", label && *label ? label : key,
                        "attrs", attrs ? attrs : json_object());
  if (!o || json_object_set_new(g->seen, id, json_string(id))) {
    json_decref(o);
    return NULL;
  }
  if (missing) json_object_set_new(o, "missing", json_true());
  json_array_append_new(g->nodes, o);
  return json_string_value(json_object_get(g->seen, id));
}

static void edge(struct graph *g, const char *from, const char *to, const char *type) {
  if (!from || !to) return;
  /* once each: a run reached from the version and from its logged model */
  char key[2 * (4 * REGISTRY_MAX_NAME_LEN + 640) + 32];
  snprintf(key, sizeof key, "\x01%s\x01%s\x01%s", from, type, to);
  if (json_object_get(g->seen, key) || json_object_set_new(g->seen, key, json_true())) return;
  json_array_append_new(g->edges, json_pack("{s:s, s:s, s:s}", "from", from, "to", to, "type", type));
}

static const char *add_experiment(struct graph *g, struct db *db, const char *project_id, const char *exp_id) {
  if (!exp_id || !*exp_id) return NULL;
  struct err e;
  json_t *x = track_experiment_get(db, project_id, exp_id, &e);
  if (!x) return node(g, N_EXPERIMENT, exp_id, exp_id, json_pack("{s:s}", "experiment_id", exp_id), true);
  json_t *exp = json_object_get(x, "experiment") ? json_object_get(x, "experiment") : x;
  json_t *attrs = json_object();
  static const char *const keys[] = {"experiment_id", "lifecycle_stage", "artifact_location", NULL};
  copy_keys(attrs, exp, keys);
  const char *id = node(g, N_EXPERIMENT, exp_id, str_at(exp, "name"), attrs, false);
  json_decref(x);
  return id;
}

/* The run node with its experiment and inputs; NULL only on OOM. */
static const char *add_run(struct graph *g, struct db *db, const char *project_id, const char *run_id,
                           bool *truncated) {
  struct err e;
  char seen[64];
  snprintf(seen, sizeof seen, N_RUN ":%s", run_id);
  if (json_object_get(g->seen, seen)) return json_string_value(json_object_get(g->seen, seen));
  json_t *run = track_run_get(db, project_id, run_id, &e);
  if (!run) return node(g, N_RUN, run_id, run_id, json_pack("{s:s}", "run_id", run_id), true);
  json_t *info = json_object_get(run, "info");
  json_t *attrs = json_object();
  static const char *const keys[] = {"run_id", "status", "lifecycle_stage", "start_time", "end_time",
                                     "artifact_uri", "user_id", NULL};
  copy_keys(attrs, info, keys);
  const char *rid = node(g, N_RUN, run_id, str_at(info, "run_name"), attrs, false);
  edge(g, rid, add_experiment(g, db, project_id, str_at(info, "experiment_id")), E_LOGGED_IN);
  json_t *inputs = json_object_get(json_object_get(run, "inputs"), "dataset_inputs");
  size_t i;
  json_t *in;
  json_array_foreach(inputs, i, in) {
    if (i >= REGISTRY_LINEAGE_MAX_DATASETS) {
      *truncated = true;
      break;
    }
    json_t *ds = json_object_get(in, "dataset");
    const char *name = str_at(ds, "name"), *digest = str_at(ds, "digest");
    if (!name || !digest) continue;
    json_t *da = json_object();
    static const char *const dkeys[] = {"name", "digest", "source_type", "source", NULL};
    copy_keys(da, ds, dkeys);
    /* the input's own tags say how the run used it (mlflow.data.context) */
    size_t k;
    json_t *t;
    json_array_foreach(json_object_get(in, "tags"), k, t) {
      if (str_eq(str_at(t, "key"), "mlflow.data.context") && str_at(t, "value"))
        json_object_set_new(da, "context", json_string(str_at(t, "value")));
    }
    char key[4 * 256 + 64];
    snprintf(key, sizeof key, "%.64s:%.500s", digest, name);
    edge(g, rid, node(g, N_DATASET, key, name, da, false), E_CONSUMED);
  }
  json_decref(run);
  return rid;
}

static const char *add_logged_model(struct graph *g, struct db *db, const char *project_id, const char *model_id,
                                    char *run_out, size_t cap) {
  struct err e;
  json_t *lm = track_logged_model_get(db, project_id, model_id, &e);
  if (!lm) return node(g, N_LOGGED_MODEL, model_id, model_id, json_pack("{s:s}", "model_id", model_id), true);
  json_t *info = json_object_get(lm, "info") ? json_object_get(lm, "info") : json_object_get(json_object_get(lm, "model"), "info");
  json_t *attrs = json_object();
  static const char *const keys[] = {"model_id", "status", "artifact_uri", "source_run_id", "model_type", NULL};
  copy_keys(attrs, info, keys);
  const char *id = node(g, N_LOGGED_MODEL, model_id, str_at(info, "name"), attrs, false);
  edge(g, id, add_experiment(g, db, project_id, str_at(info, "experiment_id")), E_LOGGED_IN);
  if (str_at(info, "source_run_id")) str_copy(run_out, cap, str_at(info, "source_run_id"));
  json_decref(lm);
  return id;
}

json_t *registry_version_lineage(struct db *db, const char *project_id, const char *name, const char *version,
                                 struct err *e) {
  json_t *mv = registry_version_get(db, project_id, name, version, e);
  if (!mv) return NULL;
  struct graph g = {json_array(), json_array(), json_object()};
  json_t *out = NULL;
  bool truncated = false;
  if (!g.nodes || !g.edges || !g.seen) goto oom;
  json_t *attrs = json_object();
  static const char *const keys[] = {"name", "version", "current_stage", "status", "source", "run_id", "model_id",
                                     "creation_timestamp", "user_id", "aliases", NULL};
  copy_keys(attrs, mv, keys);
  char key[4 * REGISTRY_MAX_NAME_LEN + 32], label[4 * REGISTRY_MAX_NAME_LEN + 32];
  snprintf(key, sizeof key, "%s/%s", str_at(mv, "name"), str_at(mv, "version"));
  snprintf(label, sizeof label, "%s v%s", str_at(mv, "name"), str_at(mv, "version"));
  const char *vid = node(&g, N_VERSION, key, label, attrs, false);
  if (!vid) goto oom;

  /* the run: the version's run_id, else the one its runs:/ source names,
   * else the logged model's source run */
  char run_id[TRACKING_RUN_ID_LEN + 1] = "";
  const char *rid = str_at(mv, "run_id"), *src = str_at(mv, "source");
  if (rid && *rid) {
    str_copy(run_id, sizeof run_id, rid);
  } else if (src && str_has_prefix(src, "runs:/")) {
    const char *p = src + 6;
    while (*p == '/') p++;
    size_t n = strcspn(p, "/");
    if (n > 0 && n <= TRACKING_RUN_ID_LEN) {
      memcpy(run_id, p, n);
      run_id[n] = 0;
    }
  }
  const char *mid = str_at(mv, "model_id");
  if (!mid && src && str_has_prefix(src, "models:/") && !strchr(src + 8, '/')) mid = src + 8;
  char lm_run[TRACKING_RUN_ID_LEN + 1] = "";
  const char *lmid = NULL;
  if (mid && *mid) {
    lmid = add_logged_model(&g, db, project_id, mid, lm_run, sizeof lm_run);
    edge(&g, vid, lmid, E_REGISTERED_FROM);
  }
  if (!run_id[0] && lm_run[0]) str_copy(run_id, sizeof run_id, lm_run);
  if (run_id[0]) edge(&g, vid, add_run(&g, db, project_id, run_id, &truncated), E_PRODUCED_BY);
  if (lmid && lm_run[0]) edge(&g, lmid, add_run(&g, db, project_id, lm_run, &truncated), E_PRODUCED_BY);

  out = json_pack("{s:O, s:O}", "nodes", g.nodes, "edges", g.edges);
  if (!out) goto oom;
  if (truncated) json_object_set_new(out, "truncated", json_true());
  goto done;
oom:
  err_set(e, ERR_NO_MEMORY, "out of memory");
done:
  json_decref(g.nodes);
  json_decref(g.edges);
  json_decref(g.seen);
  json_decref(mv);
  return out;
}
