/* cli/verbs: the verb table, `kiln help` and `kiln version`. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "base/base.h"

const struct cli_verb cli_verbs[] = {
    {"server", "run the Kiln server (API, dashboard, serving)",
     "usage: kiln server [--listen ADDR:PORT] [--data DIR] [--db URL] [--blobs URL] [options]\n"
     "\n"
     "Runs the API, the dashboard and (later) serving in one process. With no\n"
     "options it keeps everything under ./data (SQLite + local blobs) and listens\n"
     "on 127.0.0.1:8080. --listen 127.0.0.1:0 picks a free port; the address is\n"
     "printed as `kiln: listening on http://HOST:PORT`. SIGINT/SIGTERM stop it\n"
     "gracefully: no new connections, in-flight requests finish, writes flush.\n"
     "\n"
     "Every option can also come from a KILN_* environment variable or a config\n"
     "file (--config FILE or KILN_CONFIG; `key = value` lines). Flags win over\n"
     "the environment, the environment over the file.\n"
     "\n"
     "options:\n",
     cli_server},
    {"admin", "operator tasks on a store (audit-verify, rotate-signing-key, gc)",
     "usage: kiln admin audit-verify [--data DIR] [--db URL]\n"
     "       kiln admin gc [--data DIR] [--db URL] [--blobs URL] [--older-than SECONDS] [--grace SECONDS]\n"
     "       kiln admin rotate-signing-key [--data DIR] [--db URL]\n"
     "\n"
     "audit-verify  walks the hash-chained audit log and checks every entry.\n"
     "              Prints `audit log intact: N entries` and the last entry's\n"
     "              seq and hash (exit 0), or `audit log BROKEN at entry N:\n"
     "              REASON` for the first edited or deleted entry (exit 1).\n"
     "              Entries cut from the end leave a shorter intact chain:\n"
     "              compare the last seq and hash with a copy kept elsewhere.\n"
     "rotate-signing-key  adds a new JWT signing key and retires the old one;\n"
     "              tokens it signed stay valid until they expire (no one is\n"
     "              logged out). Safe while the server runs.\n"
     "gc            permanently deletes runs and experiments in the deleted\n"
     "              stage (deleted at least --older-than seconds ago, default\n"
     "              0), drops their artifacts' blob references, then removes\n"
     "              blobs nothing references (stored at least --grace seconds\n"
     "              ago, default 600) and prints what it reclaimed. Safe while\n"
     "              the server runs.\n"
     "\n"
     "options:\n"
     "  --data DIR   data directory (default ./data; env KILN_DATA); the store\n"
     "               is DIR/kiln.db\n"
     "  --db URL     metadata store URL, e.g. sqlite:PATH (env KILN_DB)\n"
     "  --blobs URL  blob store URL (gc; default file:DIR/blobs; env KILN_BLOBS)\n"
     "\n"
     "Exit codes: 0 intact, 1 broken or the store cannot be opened, 2 usage.\n",
     cli_admin},
    {"login", "sign in to a server and keep the credentials",
     "usage: kiln login [--url URL] [--username NAME] [--password-stdin] | --api-key KEY\n"
     "\n"
     "Signs in with a password (asked for without echo, or read from stdin with\n"
     "--password-stdin) or stores an API key. Credentials go to\n"
     "~/.config/kiln/credentials (mode 0600; KILN_CONFIG_DIR or XDG_CONFIG_HOME\n"
     "move it): the server URL and a refresh token (rotated on each use) or the\n"
     "key. KILN_URL and KILN_API_KEY override the file.\n",
     cli_login},
    {"logout", "revoke the stored login and forget it", "usage: kiln logout\n", cli_logout},
    {"whoami", "show the signed-in user and credential", "usage: kiln whoami\n", cli_whoami},
    {"keys", "manage your API keys",
     "usage: kiln keys list\n"
     "       kiln keys create --name NAME [--scopes read,write,predict,admin] [--project ID]\n"
     "       kiln keys revoke KEY_ID\n"
     "       kiln keys rotate KEY_ID [--grace SECONDS]\n"
     "\n"
     "create and rotate print the new key once; store it now.\n",
     cli_keys},
    {"projects", "list and create projects, manage members",
     "usage: kiln projects list\n"
     "       kiln projects create --org ORG_ID --name NAME [--description TEXT]\n"
     "       kiln projects members PROJECT_ID [--user USER_ID --role viewer|editor|admin]\n"
     "       kiln projects members PROJECT_ID --user USER_ID --remove\n",
     cli_projects},
    {"members", "list, add, change and remove members of an org or a project",
     "usage: kiln members list   (--org ORG | --project PROJECT_ID)\n"
     "       kiln members add    (--org ORG | --project PROJECT_ID) --user USER [--role ROLE]\n"
     "       kiln members set    (--org ORG | --project PROJECT_ID) --user USER --role ROLE\n"
     "       kiln members remove (--org ORG | --project PROJECT_ID) --user USER\n"
     "\n"
     "ORG is an organization's name or id; USER a username, email or user id.\n"
     "Org roles: member, admin, owner (default member; only owners make owners,\n"
     "and the last owner stays). Project roles: viewer, editor, admin (default\n"
     "viewer); a project member must belong to the project's org first.\n"
     "add refuses someone who is already a member and set someone who is not,\n"
     "so a typo never changes the wrong thing. list prints the members as JSON;\n"
     "add and set print the member as the server now has it.\n"
     "Org admins manage org members; project admins manage project members.\n",
     cli_members},
    {"invitations", "invite people by email, list and revoke invitations",
     "usage: kiln invitations create --org ORG --email EMAIL [--role ROLE] [--project PROJECT_ID]\n"
     "                               [--ttl SECONDS]\n"
     "       kiln invitations list   --org ORG [--status pending|accepted|expired|revoked]\n"
     "       kiln invitations revoke --org ORG INVITATION_ID\n"
     "       kiln invitations accept TOKEN_OR_LINK\n"
     "\n"
     "create invites EMAIL to the org (role member, admin or owner; default\n"
     "member) or, with --project, to one of its projects (viewer, editor or\n"
     "admin; default viewer), valid for --ttl seconds (1 hour to 30 days; 7 days\n"
     "by default). When the server has SMTP configured the invitation is mailed;\n"
     "otherwise, or when sending failed, the single-use accept link is printed\n"
     "for you to pass on (stdout has the JSON answer, stderr a note).\n"
     "list prints every invitation with its status, newest first.\n"
     "revoke withdraws a pending invitation: its link stops working.\n"
     "accept joins as the signed-in user, from the token or the whole link.\n"
     "Only the org's owners and admins (and server administrators) may create,\n"
     "list and revoke.\n",
     cli_invitations},
    {"experiments", "list, create and delete tracking experiments",
     "usage: kiln experiments list [--filter EXPR] [--order-by KEY [ASC|DESC]]... [--max-results N]\n"
     "                             [--all | --deleted] [--json]\n"
     "       kiln experiments create NAME [--json]\n"
     "       kiln experiments delete ID_OR_NAME\n"
     "\n"
     "Experiments of the selected project (the API key's, else your default).\n"
     "list prints ID, NAME, STAGE and CREATED (UTC) as a table; --filter and\n"
     "--order-by take MLflow's search grammar (e.g. --filter \"name LIKE 'cv-%'\"\n"
     "--order-by \"creation_time DESC\"; repeat --order-by for ties); --all also\n"
     "lists deleted experiments, --deleted only those. --json prints the\n"
     "server's answer (experiments/search) as is.\n"
     "delete marks the experiment and its runs deleted (restorable through the\n"
     "API); an all-digit argument is an id, anything else a name.\n",
     cli_experiments},
    {"runs", "list, show and compare tracking runs",
     "usage: kiln runs list [--experiment ID_OR_NAME]... [--filter EXPR] [--order-by KEY [ASC|DESC]]...\n"
     "                      [--max-results N] [--all | --deleted] [--json]\n"
     "       kiln runs show RUN_ID [--json]\n"
     "       kiln runs compare RUN_ID RUN_ID... [--json]\n"
     "\n"
     "list searches the runs of the experiments given (default: the project's\n"
     "Default experiment) and prints RUN ID, NAME, STATUS, STARTED (UTC),\n"
     "DURATION and the latest value of up to 6 metrics (alphabetical). --filter\n"
     "and --order-by take MLflow's search grammar with Kiln's OR/NOT/parentheses,\n"
     "e.g. --filter \"metrics.acc > 0.9 and params.lr = '0.01'\" --order-by\n"
     "\"metrics.acc DESC\". --max-results caps the rows (server default 1000).\n"
     "show prints a run's info, params, latest metrics (with their step) and tags.\n"
     "compare prints one column per run and one row per param and metric; rows\n"
     "whose values differ are marked *. --json prints the server's answers\n"
     "(runs/search; runs/get's run; {\"runs\": [...]} for compare).\n",
     cli_runs},
    {"models", "list registered models, their versions; promote a version, set an alias",
     "usage: kiln models list [--filter EXPR] [--order-by KEY [ASC|DESC]]... [--max-results N] [--json]\n"
     "       kiln models show NAME [--json]\n"
     "       kiln models versions NAME [--max-results N] [--json]\n"
     "       kiln models promote NAME VERSION STAGE [--archive-existing] [--json]\n"
     "       kiln models alias NAME ALIAS VERSION [--json]\n"
     "       kiln models push FILE --name NAME [--description TEXT] [--tag KEY=VALUE]... [--chunk-size BYTES] [--json]\n"
     "       kiln models download NAME VERSION [-o FILE]\n"
     "       kiln models lineage NAME VERSION [--json]\n"
     "\n"
     "The model registry of the selected project (the API key's, else your\n"
     "default). list prints NAME, LATEST (the newest version in each stage),\n"
     "ALIASES and UPDATED (UTC); --filter takes MLflow's registered-model grammar\n"
     "(e.g. --filter \"name LIKE 'churn%'\" or \"tags.team = 'cv'\"), --order-by\n"
     "name, last_updated_timestamp or creation_timestamp with ASC/DESC.\n"
     "show prints a model's description, aliases, tags and latest versions.\n"
     "versions prints every version, newest first, with stage, status, aliases\n"
     "and run. promote moves a version to None, Staging, Production or Archived\n"
     "(any case); --archive-existing archives the stage's other versions.\n"
     "alias points ALIAS at VERSION (moving it when set). lineage prints the\n"
     "graph of where a version came from (its run, the datasets the run used,\n"
     "the logged model, experiments): one row per edge, missing pieces marked.\n"
     "push uploads a model file (resumable: run it again after an interruption)\n"
     "with a progress bar; download fetches an uploaded version's file.\n"
     "--json prints the server's answer as is.\n",
     cli_models},
    {"webhooks", "manage the project's registry webhooks: list, create, delete, send a test event",
     "usage: kiln webhooks list   [--project ID] [--json]\n"
     "       kiln webhooks create --url URL --events EVENT[,EVENT...] [--model NAME] [--description TEXT]\n"
     "                            [--status ACTIVE|DISABLED|TEST_MODE] [--project ID] [--json]\n"
     "       kiln webhooks delete WEBHOOK_ID [--project ID]\n"
     "       kiln webhooks test   WEBHOOK_ID [--project ID] [--json]\n"
     "\n"
     "Webhooks of a project (--project, else the API key's, else your default;\n"
     "project admins only). Events: MODEL_VERSION_CREATED, MODEL_VERSION_READY,\n"
     "MODEL_VERSION_TRANSITIONED_STAGE, REGISTERED_MODEL_ALIAS_SET,\n"
     "REGISTERED_MODEL_ALIAS_DELETED. create prints the signing secret once.\n"
     "test queues a TEST event and waits for its outcome (exit 1 when it\n"
     "failed). See docs/registry.md#webhooks.\n",
     cli_webhooks},
    {"approvals", "the registry's approvals inbox: list requests, approve or reject one",
     "usage: kiln approvals list [--state STATE|ALL] [--max-results N] [--json]\n"
     "       kiln approvals approve ID [--comment TEXT] [--json]\n"
     "       kiln approvals reject ID [--comment TEXT] [--json]\n"
     "\n"
     "Approval requests of the selected project (governed changes: a version to\n"
     "Production, a protected alias). list prints pending requests, newest\n"
     "first (--state APPROVED, REJECTED, CANCELLED, STALE or ALL for others).\n"
     "approve makes the change and records the decision; reject records it.\n"
     "Only project admins approve or reject. --json prints the server's answer.\n",
     cli_approvals},
    {"predict", "get predictions from a served model: a JSON payload or a CSV file in batches",
     "usage: kiln predict MODEL[@VERSION] --json PAYLOAD|@FILE|- [--proba] [--margin] [--output json|csv]\n"
     "       kiln predict MODEL[@VERSION] --csv FILE|- [--batch-rows N] [--proba] [--margin] [--output json|csv]\n"
     "\n"
     "Sends rows to POST /api/v1/models/MODEL/versions/VERSION/predict of the\n"
     "selected project (the API key's, else your default) and prints the\n"
     "predictions. VERSION is a number, `latest` (the newest READY version) or\n"
     "an alias; MODEL alone means latest. The first request loads the model.\n"
     "\n"
     "--json takes an MLflow scoring payload (an object with dataframe_split,\n"
     "dataframe_records, instances or inputs) or a bare list of rows (sent as\n"
     "instances): the text itself, @FILE, or - for stdin.\n"
     "--csv reads a CSV file (- for stdin) whose first row names the columns\n"
     "and sends its rows as dataframe_split batches of --batch-rows rows\n"
     "(default 1000); all batches go to the version that answered the first.\n"
     "Cells that read as numbers are sent as numbers, empty cells and NaN as\n"
     "null (missing), anything else as text. A bar on stderr shows the\n"
     "progress of a long file when stderr is a terminal.\n"
     "--proba asks a classifier for class probabilities, --margin for raw\n"
     "scores before the link function.\n"
     "--output json (default) prints one JSON array, a prediction per line;\n"
     "--output csv prints a header (prediction, one column per class or\n"
     "output) and one line per row.\n"
     "\n"
     "A refused request prints the server's message (e.g. the column at fault)\n"
     "and exits 1; bad arguments exit 2.\n",
     cli_predict},
    {"serving", "the models the server has loaded: list them, load or unload one",
     "usage: kiln serving list [--json]\n"
     "       kiln serving load MODEL[@VERSION] [--max-batch-size N] [--max-queue-delay-us N]\n"
     "                         [--queue-capacity N] [--instances N] [--json]\n"
     "       kiln serving unload MODEL@VERSION\n"
     "\n"
     "list prints the selected project's loaded models: NAME, VERSION, BACKEND,\n"
     "STATE (with the reason when FAILED or DEGRADED), MEMORY, QUEUE (requests\n"
     "waiting), REQUESTS and ERRORS since loading, LAST USED (UTC).\n"
     "load loads a version now (models otherwise load on their first\n"
     "request) with batching settings, and waits until it is READY.\n"
     "unload drops a loaded version (the next request loads it again).\n"
     "--json prints the server's answer as is.\n",
     cli_serving},
    {"sync", "replay tracking writes the Python SDK spooled while the server was unreachable",
     "usage: kiln sync [--dir DIR] [--json]\n"
     "\n"
     "The Python SDK keeps metrics, params, tags and run updates it could not\n"
     "send in append-only spool files (KILN_SPOOL_DIR, else\n"
     "$XDG_CACHE_HOME/kiln/spool, else ~/.cache/kiln/spool). sync sends them to\n"
     "the server in order (runs started offline are created first, or found\n"
     "again by their kiln.spoolId tag) and removes each file once all of it went\n"
     "through. Replays are idempotent: running sync twice, or after the SDK\n"
     "replayed part of a file, stores nothing twice. Files spooled for another\n"
     "server URL are left alone. A record the server refuses for good is\n"
     "reported and skipped; when the server is unreachable or erroring, the file\n"
     "is kept for next time and the exit status is 1. `python3 -m kiln sync`\n"
     "does the same from the SDK.\n",
     cli_sync},
    {"version", "print the version and build commit", "usage: kiln version\n", cli_version},
    {"help", "show help for a command", "usage: kiln help [COMMAND]\n", cli_help},
};
const int cli_verbs_count = sizeof cli_verbs / sizeof cli_verbs[0];

const struct cli_verb *cli_find(const char *name) {
  for (int i = 0; i < cli_verbs_count; i++)
    if (strcmp(cli_verbs[i].name, name) == 0) return &cli_verbs[i];
  return NULL;
}

int cli_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("kiln %s (commit %s)\n", KILN_VERSION, kiln_commit);
  return 0;
}

void cli_server_print_options(FILE *f);

int cli_help(int argc, char **argv) {
  if (argc >= 1) {
    const struct cli_verb *v = cli_find(argv[0]);
    if (!v) {
      fprintf(stderr, "kiln: no help for unknown command '%s'\n", argv[0]);
      return 2;
    }
    fputs(v->usage, stdout);
    if (v->run == cli_server) cli_server_print_options(stdout);
    return 0;
  }
  printf("kiln %s — experiment tracking, model registry and serving in one binary\n\n", KILN_VERSION);
  printf("usage: kiln COMMAND [options]\n\ncommands:\n");
  for (int i = 0; i < cli_verbs_count; i++) printf("  %-12s %s\n", cli_verbs[i].name, cli_verbs[i].summary);
  printf("\nRun `kiln help COMMAND` for a command's options.\n");
  return 0;
}
