/* cli/server: composes the server — configuration, data directory, metadata
 * store, blob store, routes, HTTP — and runs it until SIGINT/SIGTERM. */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "http/http.h"
#include "registry/registry.h"
#include "serve/serve.h"
#include "track/track.h"


static struct cfg_opt server_opts[] = {
    {"listen", "KILN_LISTEN", CFG_STR, "127.0.0.1:8080", "address to listen on (port 0 picks a free one)", NULL, NULL},
    {"data", "KILN_DATA", CFG_STR, "./data", "data directory for the embedded default (SQLite + blobs)", NULL, NULL},
    {"db", "KILN_DB", CFG_STR, "", "metadata store URL: sqlite:PATH (default sqlite:DATA/kiln.db)", NULL, NULL},
    {"blobs", "KILN_BLOBS", CFG_STR, "", "blob store URL: file:DIR (default file:DATA/blobs)", NULL, NULL},
    {"threads", "KILN_THREADS", CFG_INT, "0", "HTTP I/O threads (0 = number of CPUs)", NULL, NULL},
    {"max-body", "KILN_MAX_BODY", CFG_SIZE, "32m", "largest request body accepted (413 above)", NULL, NULL},
    {"max-artifact-size", "KILN_MAX_ARTIFACT_SIZE", CFG_SIZE, "5g", "largest artifact (or multipart part) uploaded in one streamed PUT (413 above)", NULL, NULL},
    {"max-model-size", "KILN_MAX_MODEL_SIZE", CFG_SIZE, "2g", "largest model file uploaded to the registry (POST /api/v1/models/upload, resumable uploads; 413 above)", NULL, NULL},
    {"upload-session-ttl", "KILN_UPLOAD_SESSION_TTL", CFG_INT, "86400", "seconds a resumable model upload lives after its last chunk; expired sessions are removed with their bytes", NULL, NULL},
    {"clamd", "KILN_CLAMD", CFG_STR, "", "scan every uploaded model file with clamd: unix:/path/to/clamd.ctl or tcp:HOST:PORT (empty: no malware scan)", NULL, NULL},
    {"clamd-timeout", "KILN_CLAMD_TIMEOUT", CFG_INT, "30", "seconds one clamd scan may take, connect to verdict (the upload then fails closed, or open with --clamd-fail-open)", NULL, NULL},
    {"clamd-fail-open", "KILN_CLAMD_FAIL_OPEN", CFG_BOOL, "false", "when clamd cannot answer, register uploads anyway, marked not scanned (default: refuse them with 503)", NULL, NULL},
    {"onnx-runtime", "KILN_ONNX_RUNTIME", CFG_STR, "", "path of ONNX Runtime's libonnxruntime.so.1 (empty: deps/ next to the binary's folder, as scripts/bootstrap puts it)", NULL, NULL},
    {"onnx-threads", "KILN_ONNX_THREADS", CFG_INT, "1", "intra-op threads of each ONNX model instance", NULL, NULL},
    {"python", "KILN_PYTHON", CFG_STR, "/usr/bin/python3", "interpreter of the worker processes that serve pickle/joblib and TorchScript models", NULL, NULL},
    {"python-workers", "KILN_PYTHON_WORKERS", CFG_INT, "1", "worker processes (instances) per pickle/joblib/TorchScript model", NULL, NULL},
    {"worker-memory", "KILN_WORKER_MEMORY", CFG_SIZE, "8g", "address-space limit of each Python worker process (0: none)", NULL, NULL},
    {"worker-cpu-seconds", "KILN_WORKER_CPU_SECONDS", CFG_INT, "0", "CPU-time limit of each Python worker process over its life (0: none)", NULL, NULL},
    {"worker-timeout-ms", "KILN_WORKER_TIMEOUT_MS", CFG_INT, "30000", "a Python worker call longer than this kills the worker (its requests fail, it restarts)", NULL, NULL},
    {"serve-device", "KILN_SERVE_DEVICE", CFG_STR, "cpu", "device of TorchScript models: cpu or cuda (cuda falls back to cpu when absent)", NULL, NULL},
    {"serve-memory", "KILN_SERVE_MEMORY", CFG_SIZE, "2g", "memory budget of loaded models; idle ones are unloaded least recently used first beyond it", NULL, NULL},
    {"serve-max-batch", "KILN_SERVE_MAX_BATCH", CFG_INT, "32", "default most rows the batcher puts in one predict call", NULL, NULL},
    {"serve-queue-delay-us", "KILN_SERVE_QUEUE_DELAY_US", CFG_INT, "0", "default time a batch that is not full may wait for more requests (microseconds)", NULL, NULL},
    {"serve-queue-capacity", "KILN_SERVE_QUEUE_CAPACITY", CFG_INT, "1024", "default requests that may wait per model; beyond it 503 with Retry-After", NULL, NULL},
    {"serve-timeout-ms", "KILN_SERVE_TIMEOUT_MS", CFG_INT, "30000", "deadline of a prediction that names none (504 past it)", NULL, NULL},
    {"serve-max-rows", "KILN_SERVE_MAX_ROWS", CFG_INT, "100000", "most rows in one prediction request (400 above)", NULL, NULL},
    {"max-conns", "KILN_MAX_CONNS", CFG_INT, "4096", "most concurrent connections", NULL, NULL},
    {"conn-timeout", "KILN_CONN_TIMEOUT", CFG_INT, "60", "idle connection timeout in seconds", NULL, NULL},
    {"shutdown-grace-ms", "KILN_SHUTDOWN_GRACE_MS", CFG_INT, "10000", "how long shutdown waits for in-flight requests", NULL, NULL},
    {"db-readers", "KILN_DB_READERS", CFG_INT, "8", "pooled read connections to the metadata store", NULL, NULL},
    {"master-key-file", "KILN_MASTER_KEY_FILE", CFG_STR, "", "file holding the 64-hex-char blob encryption key (or set KILN_MASTER_KEY)", NULL, NULL},
    {"blob-compress", "KILN_BLOB_COMPRESS", CFG_BOOL, "true", "zstd-compress blobs where it pays", NULL, NULL},
    {"log-level", "KILN_LOG_LEVEL", CFG_STR, "info", "debug, info, warn or error", NULL, NULL},
    {"access-log", "KILN_ACCESS_LOG", CFG_BOOL, "true", "one JSON line per request on stderr", NULL, NULL},
    {"access-token-ttl", "KILN_ACCESS_TOKEN_TTL", CFG_INT, "900", "lifetime of JWT access tokens, seconds", NULL, NULL},
    {"refresh-token-ttl", "KILN_REFRESH_TOKEN_TTL", CFG_INT, "2592000", "lifetime of refresh tokens, seconds", NULL, NULL},
    {"smtp-url", "KILN_SMTP_URL", CFG_STR, "", "SMTP server for invitation mail: smtp://HOST:PORT or smtps://HOST:PORT (empty: invitations answer a link)", NULL, NULL},
    {"smtp-from", "KILN_SMTP_FROM", CFG_STR, "", "sender of invitation mail: ADDRESS or \"Name <ADDRESS>\" (required with smtp-url)", NULL, NULL},
    {"smtp-user", "KILN_SMTP_USER", CFG_STR, "", "SMTP AUTH user name (with a password)", NULL, NULL},
    {"smtp-password-file", "KILN_SMTP_PASSWORD_FILE", CFG_STR, "", "file holding the SMTP password (or set KILN_SMTP_PASSWORD)", NULL, NULL},
    {"smtp-starttls", "KILN_SMTP_STARTTLS", CFG_BOOL, "false", "require STARTTLS on smtp:// (otherwise used when the server offers it)", NULL, NULL},
    {"public-url", "KILN_PUBLIC_URL", CFG_STR, "", "base URL of links sent to people, e.g. https://kiln.example.com (empty: http://HOST of the request)", NULL, NULL},
    {"session-ttl", "KILN_SESSION_TTL", CFG_INT, "604800", "lifetime of dashboard sign-in sessions, seconds", NULL, NULL},
    {"allow-signup", "KILN_ALLOW_SIGNUP", CFG_BOOL, "false", "let anyone create an account (POST /api/v1/auth/signup)", NULL, NULL},
    {"tls-cert", "KILN_TLS_CERT", CFG_STR, "", "PEM certificate chain: serve HTTPS (with --tls-key)", NULL, NULL},
    {"tls-key", "KILN_TLS_KEY", CFG_STR, "", "PEM private key file for --tls-cert", NULL, NULL},
    {"webhook-max-attempts", "KILN_WEBHOOK_MAX_ATTEMPTS", CFG_INT, "8", "attempts per registry webhook delivery (1-20)", NULL, NULL},
    {"webhook-backoff-ms", "KILN_WEBHOOK_BACKOFF_MS", CFG_INT, "1000", "wait after a webhook delivery's first failed attempt; doubles per attempt", NULL, NULL},
    {"webhook-backoff-max-ms", "KILN_WEBHOOK_BACKOFF_MAX_MS", CFG_INT, "300000", "longest wait between webhook attempts", NULL, NULL},
    {"webhook-timeout-ms", "KILN_WEBHOOK_TIMEOUT_MS", CFG_INT, "10000", "time limit of one webhook attempt, connect included", NULL, NULL},
    {"webhook-allow-private", "KILN_WEBHOOK_ALLOW_PRIVATE", CFG_BOOL, "true", "let webhooks reach loopback, private and link-local addresses (turn off on shared servers: SSRF)", NULL, NULL},
    {"webhook-log-days", "KILN_WEBHOOK_LOG_DAYS", CFG_INT, "30", "days finished webhook deliveries stay in the delivery log", NULL, NULL},
    {"webhook-log-keep", "KILN_WEBHOOK_LOG_KEEP", CFG_INT, "1000", "finished deliveries kept per webhook in the delivery log", NULL, NULL},
};
#define NOPTS (sizeof server_opts / sizeof server_opts[0])

void cli_server_print_options(FILE *f) { cfg_print_help(server_opts, NOPTS, f); }

static int mkdir_p(const char *dir, struct err *e) {
  char tmp[4096];
  if (str_copy(tmp, sizeof tmp, dir) >= sizeof tmp) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "path too long");
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0700) && errno != EEXIST) return err_set(e, ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0700) && errno != EEXIST) return err_set(e, ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  return 0;
}

/* A small file (certificates, keys) read whole; NULL with e filled. */
static char *read_small_file(const char *path, struct err *e) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  enum { CAP = 1 << 20 };
  char *b = malloc(CAP + 1);
  size_t n = b ? fread(b, 1, CAP + 1, f) : 0;
  fclose(f);
  if (!b || n > CAP) {
    free(b);
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is larger than 1 MiB", path);
    return NULL;
  }
  b[n] = 0;
  return b;
}

/* The key comes from KILN_MASTER_KEY or a file; never from a flag, so it does
 * not show up in `ps`. */
int cli_master_key(const char *file, char out[65], bool *have, struct err *e) {
  *have = false;
  const char *env = getenv("KILN_MASTER_KEY");
  char buf[256] = {0};
  if (file && *file) {
    FILE *f = fopen(file, "r");
    if (!f) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "cannot read master key file %s: %s", file, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    env = buf;
  }
  if (!env || !*env) return 0;
  uint8_t key[32];
  if (strlen(env) != 64 || hex_decode(key, sizeof key, env) != 32)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the master key must be 64 hex characters (32 bytes)");
  for (int i = 0; i < 64; i++) out[i] = (char)(env[i] | 0x20);
  out[64] = 0;
  *have = true;
  return 0;
}

/* SMTP for invitations. The password comes from a file or
 * KILN_SMTP_PASSWORD, never from a flag, so it does not show up in `ps`. */
static int setup_mail(const struct cfg *cfg, struct auth *a, struct err *e) {
  char pw[1024] = "";
  const char *file = cfg_str(cfg, "smtp-password-file");
  if (*file) {
    FILE *f = fopen(file, "r");
    if (!f) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "cannot read smtp-password-file %s: %s", file, strerror(errno));
    size_t n = fread(pw, 1, sizeof pw - 1, f);
    fclose(f);
    pw[n] = 0;
    while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r')) pw[--n] = 0;
  } else if (getenv("KILN_SMTP_PASSWORD")) {
    str_copy(pw, sizeof pw, getenv("KILN_SMTP_PASSWORD"));
  }
  struct auth_mail_opts mo = {.smtp_url = cfg_str(cfg, "smtp-url"), .from = cfg_str(cfg, "smtp-from"),
                              .user = cfg_str(cfg, "smtp-user"), .password = pw,
                              .require_starttls = cfg_bool(cfg, "smtp-starttls"),
                              .public_url = cfg_str(cfg, "public-url")};
  int rc = auth_mail_setup(a, &mo, e);
  explicit_bzero(pw, sizeof pw);
  if (rc || !auth_mail_enabled(a)) return rc;
  /* the URL holds no credentials: auth_mail_setup refuses them */
  log_info("mail.configured", "invitations are mailed through %s", mo.smtp_url);
  if (!*auth_public_url(a))
    log_warn("mail.public_url", "public-url is not set: links in invitation mail are built from the "
             "Host header of the request that made them; set --public-url");
  return 0;
}

/* The malware scanner for uploads. A malformed address stops the server; a
 * clamd that does not answer yet only warns (it may start after us): until
 * it does, uploads are refused, or registered unscanned with fail-open. */
/* The serving runtime: its flags, and where ONNX Runtime is when unsaid. */
static int setup_serve(const struct cfg *cfg, struct app *app, struct err *e) {
  static char onnx_path[4096], tmp_dir[4200];
  struct serve_config sc;
  serve_config_default(&sc);
  const char *ort = cfg_str(cfg, "onnx-runtime");
  if (*ort) {
    str_copy(onnx_path, sizeof onnx_path, ort);
  } else {
    /* build/kiln -> deps/ at the repository root; an installed kiln -> ../deps */
    char exe[3000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    /* the nearest deps/ above the binary: build/kiln and build/asan/kiln both
     * find the repository's deps/; an installed kiln its own prefix's */
    static const char *const up[] = {"/..", "/../..", "", "/../../.."};
    for (size_t i = 0; i < sizeof up / sizeof *up; i++) {
      snprintf(onnx_path, sizeof onnx_path, "%s%s/deps/libonnxruntime.so.1", exe, up[i]);
      if (access(onnx_path, R_OK) == 0) break;
    }
    if (access(onnx_path, R_OK) != 0) snprintf(onnx_path, sizeof onnx_path, "%s/../deps/libonnxruntime.so.1", exe);
  }
  sc.onnx_library = onnx_path;
  sc.onnx_threads = (int)cfg_int(cfg, "onnx-threads");
  sc.python = cfg_str(cfg, "python");
  sc.python_workers = (int)cfg_int(cfg, "python-workers");
  sc.worker_memory = (uint64_t)cfg_int(cfg, "worker-memory");
  sc.worker_cpu_s = cfg_int(cfg, "worker-cpu-seconds");
  sc.worker_timeout_ms = cfg_int(cfg, "worker-timeout-ms");
  sc.device = cfg_str(cfg, "serve-device");
  sc.memory_budget = (uint64_t)cfg_int(cfg, "serve-memory");
  sc.max_batch_size = (int)cfg_int(cfg, "serve-max-batch");
  sc.max_queue_delay_us = cfg_int(cfg, "serve-queue-delay-us");
  sc.queue_capacity = (int)cfg_int(cfg, "serve-queue-capacity");
  sc.default_timeout_us = cfg_int(cfg, "serve-timeout-ms") * 1000;
  if (sc.onnx_threads < 1 || sc.onnx_threads > 64) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--onnx-threads must be 1..64");
  if (sc.python_workers < 1 || sc.python_workers > 16)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--python-workers must be 1..16");
  if (sc.max_batch_size < 1 || sc.max_batch_size > 4096)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-max-batch must be 1..4096");
  if (sc.max_queue_delay_us < 0 || sc.max_queue_delay_us > 10000000)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-queue-delay-us must be 0..10000000");
  if (sc.queue_capacity < 1 || sc.queue_capacity > 1000000)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-queue-capacity must be 1..1000000");
  if (sc.default_timeout_us < 1000) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-timeout-ms must be >= 1");
  if (sc.worker_timeout_ms < 10) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--worker-timeout-ms must be >= 10");
  if (!str_eq(sc.device, "cpu") && !str_eq(sc.device, "cuda"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-device must be cpu or cuda");
  if (cfg_int(cfg, "serve-max-rows") < 1) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--serve-max-rows must be >= 1");
  snprintf(tmp_dir, sizeof tmp_dir, "%s/serve", app->data_dir);
  sc.tmp_dir = tmp_dir;
  return serve_open(&app->serve, app->db, app->blobs, &sc, e);
}

static int setup_clamd(const struct cfg *cfg, struct app *app, struct err *e) {
  const char *addr = cfg_str(cfg, "clamd");
  if (!*addr) return 0;
  int64_t t = cfg_int(cfg, "clamd-timeout");
  if (t < 1 || t > 3600) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--clamd-timeout must be 1..3600 seconds");
  struct registry_clamd_opts o = {.address = addr, .timeout_ms = t * 1000};
  if (registry_clamd_new(&app->av, &o, e)) return -(int)e->code;
  bool fail_open = cfg_bool(cfg, "clamd-fail-open");
  char engine[REGISTRY_AV_ENGINE_MAX + 1];
  struct err ce = {0};
  if (registry_av_check(app->av, engine, sizeof engine, &ce))
    log_warn("clamd.unavailable", "clamd at %s does not answer (%s): uploads will be %s until it does", addr, ce.msg,
             fail_open ? "registered unscanned (--clamd-fail-open)" : "refused (fail closed)");
  else
    log_info("clamd.ready", "uploads are scanned by %s at %s (fail %s)", engine, addr, fail_open ? "open" : "closed");
  return 0;
}

int cli_server(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (str_eq(argv[i], "--help") || str_eq(argv[i], "-h")) {
      char *a[] = {"server"};
      return cli_help(1, a);
    }
  }
  struct cfg cfg;
  struct err e = {0};
  if (cfg_load(&cfg, server_opts, NOPTS, argc, argv, &e)) {
    fprintf(stderr, "kiln server: %s\n", e.msg);
    cfg_fini(&cfg);
    return 2;
  }
  log_set_level(log_level_parse(cfg_str(&cfg, "log-level"), LOG_INFO));
  if (base_init()) {
    fprintf(stderr, "kiln server: cannot initialise libsodium\n");
    return 1;
  }
  /* Threads inherit this mask; only the main thread takes the signals. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  umask(077); /* the database, blobs and key files are for this user only */

  int rc = 1;
  struct app app = {.cfg = &cfg, .started_at_ms = time_wall_ms(), .data_dir = cfg_str(&cfg, "data")};
  struct router *router = NULL;
  char *tls_cert = NULL, *tls_key = NULL;
  struct http_server *srv = NULL;
  char url[4200];

  if (mkdir_p(app.data_dir, &e)) goto fail;
  const char *db_url = cfg_str(&cfg, "db");
  if (!*db_url) db_url = arena_printf(&cfg.arena, "sqlite:%s/kiln.db", app.data_dir);
  const char *blob_url = cfg_str(&cfg, "blobs");
  if (!*blob_url) blob_url = arena_printf(&cfg.arena, "file:%s/blobs", app.data_dir);

  struct db_opts dbo = {.max_readers = (int)cfg_int(&cfg, "db-readers"), .synchronous_full = true};
  if (db_open(&app.db, db_url, &dbo, &e)) goto fail;
  int applied = db_migrate(app.db, &e);
  if (applied < 0) goto fail;

  char key[65];
  bool have_key;
  if (cli_master_key(cfg_str(&cfg, "master-key-file"), key, &have_key, &e)) goto fail;
  struct blob_opts bo = {.master_key_hex = have_key ? key : NULL, .zstd_level = 3,
                         .compress = cfg_bool(&cfg, "blob-compress")};
  struct auth_opts ao = {.access_ttl_s = cfg_int(&cfg, "access-token-ttl"),
                         .refresh_ttl_s = cfg_int(&cfg, "refresh-token-ttl"),
                         .session_ttl_s = cfg_int(&cfg, "session-ttl"),
                         .allow_signup = cfg_bool(&cfg, "allow-signup"),
                         .has_master_key = have_key};
  if (have_key) hex_decode(ao.master_key, sizeof ao.master_key, key);
  int64_t attempts = cfg_int(&cfg, "webhook-max-attempts");
  struct registry_webhooks_opts wo = {
      .master_key = have_key ? ao.master_key : NULL,
      .max_attempts = attempts < 1 ? 1 : attempts > REGISTRY_WEBHOOK_MAX_ATTEMPTS ? REGISTRY_WEBHOOK_MAX_ATTEMPTS : (int)attempts,
      .backoff_ms = cfg_int(&cfg, "webhook-backoff-ms"),
      .backoff_max_ms = cfg_int(&cfg, "webhook-backoff-max-ms"),
      .timeout_ms = cfg_int(&cfg, "webhook-timeout-ms"),
      .allow_private = cfg_bool(&cfg, "webhook-allow-private"),
      .log_retention_ms = cfg_int(&cfg, "webhook-log-days") * 24 * 3600 * 1000,
      .log_keep = cfg_int(&cfg, "webhook-log-keep"),
  };
  int orc = blob_open(&app.blobs, blob_url, app.db, &bo, &e);
  if (orc == 0) orc = auth_open(&app.auth, app.db, &ao, &e);
  if (orc == 0) orc = auth_signing_key_check(app.auth, &e);
  if (orc == 0) orc = registry_webhooks_new(&app.webhooks, app.db, &wo, &e);
  sodium_memzero(key, sizeof key);
  sodium_memzero(ao.master_key, sizeof ao.master_key);
  if (orc) goto fail;
  if (setup_mail(&cfg, app.auth, &e)) goto fail;
  if (setup_clamd(&cfg, &app, &e)) goto fail;
  bool admin_created = false;
  char admin_pw[65];
  /* the password is never logged: stderr once, and a 0600 file */
  if (auth_bootstrap_admin(app.auth, getenv("KILN_ADMIN_PASSWORD"), app.data_dir, &admin_created,
                           admin_pw, &e))
    goto fail;
  if (admin_created && admin_pw[0])
    fprintf(stderr, "kiln: created user 'admin' with password %s (also in %s/initial-admin-password)\n",
            admin_pw, app.data_dir);
  else if (admin_created)
    log_info("auth.admin_created", "created user 'admin' with the password from KILN_ADMIN_PASSWORD");
  memset(admin_pw, 0, sizeof admin_pw);

  if (setup_serve(&cfg, &app, &e)) goto fail;

  metrics_process_register();
  http_metrics_init();
  track_events_metrics_init(); /* live-update gauges exist before the first stream */

  router = router_new();
  if (!router || routes_register_all(router, &e)) goto fail;

  struct http_opts ho = {
      .listen = cfg_str(&cfg, "listen"),
      .threads = (int)cfg_int(&cfg, "threads"),
      .max_body = (uint64_t)cfg_int(&cfg, "max-body"),
      .max_stream_body = (uint64_t)cfg_int(&cfg, "max-artifact-size"),
      .conn_timeout_s = (int)cfg_int(&cfg, "conn-timeout"),
      .max_conns = (int)cfg_int(&cfg, "max-conns"),
      .access_log = cfg_bool(&cfg, "access-log"),
  };
  const char *cert_file = cfg_str(&cfg, "tls-cert"), *key_file = cfg_str(&cfg, "tls-key");
  if (*cert_file || *key_file) {
    if (!*cert_file || !*key_file) {
      err_set(&e, ERR_INVALID_PARAMETER_VALUE, "--tls-cert and --tls-key go together");
      goto fail;
    }
    if (!(tls_cert = read_small_file(cert_file, &e)) || !(tls_key = read_small_file(key_file, &e))) goto fail;
    ho.tls_cert_pem = tls_cert;
    ho.tls_key_pem = tls_key;
    app.tls = true;
  }
  if (http_server_start(&srv, &ho, router, &app, &e)) goto fail;
  registry_webhooks_set_self_port(app.webhooks, http_server_port(srv));
  /* after the listener: deliveries left by an earlier run resume now */
  if (registry_webhooks_start(app.webhooks, &e)) goto fail;

  const char *host = ho.listen;
  const char *colon = strrchr(host, ':');
  int hl = (int)(colon - host);
  if (hl == 0 || (hl == 7 && strncmp(host, "0.0.0.0", 7) == 0)) {
    host = "127.0.0.1";
    hl = 9;
  }
  snprintf(url, sizeof url, "%s://%.*s:%d", app.tls ? "https" : "http", hl, host, http_server_port(srv));
  printf("kiln: listening on %s\n", url);
  printf("kiln: dashboard %s/  api docs %s/api/docs  data %s\n", url, url, app.data_dir);
  {
    char pwfile[4200];
    snprintf(pwfile, sizeof pwfile, "%s/initial-admin-password", app.data_dir);
    if (access(pwfile, F_OK) == 0)
      printf("kiln: sign in as 'admin' with the password in %s\n", pwfile);
  }
  fflush(stdout);
  log_info("server.started", "kiln %s listening on %s (db %s, migrations applied now %d)", KILN_VERSION,
           url, db_driver_name(app.db), applied);

  int sig = 0;
  sigwait(&sigs, &sig);
  log_info("server.stopping", "signal %d: draining in-flight requests", sig);
  /* requests parked on a model's queue are answered before the daemon stops */
  http_server_quiesce(srv, (int)cfg_int(&cfg, "shutdown-grace-ms"));
  serve_close(app.serve);
  app.serve = NULL;
  http_server_stop(srv, 1000);
  srv = NULL;
  rc = 0;
  goto done;

fail:
  fprintf(stderr, "kiln server: %s\n", e.msg[0] ? e.msg : "startup failed");
  log_error("server.failed", "%s", e.msg);
done:
  if (srv) http_server_quiesce(srv, 0);
  serve_close(app.serve);
  if (srv) http_server_stop(srv, 0);
  registry_webhooks_free(app.webhooks); /* stops the worker before the store closes */
  registry_av_free(app.av);
  sys_fini();
  router_free(router);
  auth_close(app.auth);
  blob_close(app.blobs);
  db_close(app.db); /* drains the writer: every acknowledged write is committed */
  log_flush();
  if (rc == 0) log_info("server.stopped", "clean shutdown");
  if (tls_key) {
    sodium_memzero(tls_key, strlen(tls_key));
    free(tls_key);
  }
  free(tls_cert);
  cfg_fini(&cfg);
  return rc;
}
