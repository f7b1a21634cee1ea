/* tests for the clamd client: the reply parser (every reply shape clamd
 * sends, and the ones it must refuse), INSTREAM framing read back off a real
 * socket, address parsing, and the client's bounds against a scripted peer
 * on a unix socket (a reply that never comes, one too long, nonsense). The
 * real daemon is exercised in tests/api/test_model_clamav.py. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "registry/registry.h"

/* ---- replies ---- */

static enum registry_clamd_kind parse(const char *s, struct registry_clamd_reply *r) {
  return registry_clamd_reply_parse(s, strlen(s) + 1, r); /* with its NUL, as z-mode sends it */
}

TestSuite(registry_clamav_reply);

Test(registry_clamav_reply, clean) {
  struct registry_clamd_reply r;
  cr_assert_eq(parse("stream: OK", &r), REGISTRY_CLAMD_OK);
  cr_assert_str_empty(r.text);
  /* n-mode newline and no terminator at all are the same reply */
  cr_assert_eq(registry_clamd_reply_parse("stream: OK\n", 11, &r), REGISTRY_CLAMD_OK);
  cr_assert_eq(registry_clamd_reply_parse("stream: OK", 10, &r), REGISTRY_CLAMD_OK);
}

Test(registry_clamav_reply, found_names_the_signature) {
  struct registry_clamd_reply r;
  cr_assert_eq(parse("stream: Win.Test.EICAR_HDB-1 FOUND", &r), REGISTRY_CLAMD_FOUND);
  cr_assert_str_eq(r.text, "Win.Test.EICAR_HDB-1");
  cr_assert_eq(parse("stream: Kiln.Test.Marker.UNOFFICIAL FOUND", &r), REGISTRY_CLAMD_FOUND);
  cr_assert_str_eq(r.text, "Kiln.Test.Marker.UNOFFICIAL");
  /* heuristic names may hold spaces inside */
  cr_assert_eq(parse("stream: Heuristics.Limits Exceeded FOUND", &r), REGISTRY_CLAMD_FOUND);
  cr_assert_str_eq(r.text, "Heuristics.Limits Exceeded");
}

Test(registry_clamav_reply, errors_and_the_size_limit) {
  struct registry_clamd_reply r;
  cr_assert_eq(parse("INSTREAM size limit exceeded. ERROR", &r), REGISTRY_CLAMD_SIZE_LIMIT);
  cr_assert_str_eq(r.text, "INSTREAM size limit exceeded.");
  cr_assert_eq(parse("stream: Can't allocate memory ERROR", &r), REGISTRY_CLAMD_ERROR);
  cr_assert_str_eq(r.text, "Can't allocate memory");
  cr_assert_eq(parse("Error processing command. ERROR", &r), REGISTRY_CLAMD_ERROR);
  cr_assert_str_eq(r.text, "Error processing command.");
}

Test(registry_clamav_reply, refuses_what_is_not_a_verdict) {
  struct registry_clamd_reply r;
  const char *bad[] = {
      "", "stream:", "stream: ", "stream: ok", "OK", "stream: OK ", " stream: OK", "stream: FOUND",
      "stream:  FOUND", "stream:  X FOUND", "stream: X  FOUND", "X FOUND", "FOUND", " ERROR", "stream:  ERROR",
      "PONG", "UNKNOWN COMMAND", "COMMAND READ TIMED OUT", "1: stream: OK" /* IDSESSION replies: not ours */,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(parse(bad[i], &r), REGISTRY_CLAMD_MALFORMED, "'%s' accepted", bad[i]);
    cr_assert_str_empty(r.text);
  }
  /* control bytes, a NUL inside, non-ASCII: never copied into messages */
  cr_assert_eq(registry_clamd_reply_parse("stream: A\x01 FOUND", 17, &r), REGISTRY_CLAMD_MALFORMED);
  cr_assert_eq(registry_clamd_reply_parse("stream: OK\0\0", 12, &r), REGISTRY_CLAMD_MALFORMED);
  cr_assert_eq(registry_clamd_reply_parse("stream: \xc3\xa9 FOUND", 16, &r), REGISTRY_CLAMD_MALFORMED);
  cr_assert_eq(registry_clamd_reply_parse("stream: X\r FOUND", 16, &r), REGISTRY_CLAMD_MALFORMED);
}

Test(registry_clamav_reply, bounds) {
  struct registry_clamd_reply r;
  char buf[REGISTRY_CLAMD_REPLY_MAX + 64];
  /* the longest signature passes, one byte more does not */
  int n = snprintf(buf, sizeof buf, "stream: %.*s FOUND", REGISTRY_AV_SIG_MAX,
                   "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"
                   "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS");
  cr_assert_eq(registry_clamd_reply_parse(buf, (size_t)n, &r), REGISTRY_CLAMD_FOUND);
  cr_assert_eq(strlen(r.text), REGISTRY_AV_SIG_MAX);
  memset(buf, 'S', sizeof buf);
  memcpy(buf, "stream: ", 8);
  memcpy(buf + 8 + REGISTRY_AV_SIG_MAX + 1, " FOUND", 6);
  cr_assert_eq(registry_clamd_reply_parse(buf, 8 + REGISTRY_AV_SIG_MAX + 1 + 6, &r), REGISTRY_CLAMD_MALFORMED);
  /* a reply over the cap is refused whatever it says */
  memset(buf, 'E', sizeof buf);
  memcpy(buf + REGISTRY_CLAMD_REPLY_MAX + 1 - 6, " ERROR", 6);
  cr_assert_eq(registry_clamd_reply_parse(buf, REGISTRY_CLAMD_REPLY_MAX + 1, &r), REGISTRY_CLAMD_MALFORMED);
  memset(buf, 'E', sizeof buf);
  memcpy(buf + REGISTRY_CLAMD_REPLY_MAX - 6, " ERROR", 6);
  cr_assert_eq(registry_clamd_reply_parse(buf, REGISTRY_CLAMD_REPLY_MAX, &r), REGISTRY_CLAMD_ERROR);
  cr_assert_eq(strlen(r.text), REGISTRY_CLAMD_REPLY_MAX - 6);
}

/* ---- INSTREAM framing ---- */

static char tmpdir[64];

static void mk_tmp(void) {
  str_copy(tmpdir, sizeof tmpdir, "/tmp/kiln-clamav-XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}
static void rm_tmp(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

/* A file of n bytes (a pattern that shows misordering) opened for reading. */
static int file_of(size_t n) {
  char path[128];
  snprintf(path, sizeof path, "%s/f-%zu", tmpdir, n);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  for (size_t i = 0; i < n; i++) fputc((int)((i * 7 + i / 251) & 0xff), f);
  fclose(f);
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  return fd;
}

static size_t read_exact(int fd, uint8_t *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

/* Sends a file of size bytes in chunks of chunk and checks, off the other end
 * of a real socket, every frame: lengths big-endian, none over chunk, every
 * byte in order, one zero-length terminator, nothing after it. */
static void frame_roundtrip(size_t size, size_t chunk) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int sndbuf = 4 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  int fd = file_of(size);
  struct err e = {0};
  cr_assert_eq(registry_clamd_instream(sv[0], fd, chunk, time_mono_us() + 60000000, &e), 0, "%s", e.msg);
  close(sv[0]);
  size_t total = 0, frames = 0;
  uint8_t hdr[4], *data = malloc(chunk ? chunk : 1);
  for (;;) {
    cr_assert_eq(read_exact(sv[1], hdr, 4), 4, "stream ended without a terminator");
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0) break;
    cr_assert_leq(len, chunk, "frame of %u bytes, chunk %zu", len, chunk);
    cr_assert_eq(read_exact(sv[1], data, len), len);
    for (uint32_t i = 0; i < len; i++, total++)
      cr_assert_eq(data[i], (uint8_t)((total * 7 + total / 251) & 0xff), "byte %zu", total);
    frames++;
  }
  cr_assert_eq(total, size);
  cr_assert_eq(frames, (size + chunk - 1) / chunk, "%zu frames for %zu bytes in %zu-byte chunks", frames, size, chunk);
  cr_assert_eq(read(sv[1], hdr, 1), 0, "bytes after the terminator");
  free(data);
  close(fd);
  close(sv[1]);
}

TestSuite(registry_clamav_framing, .init = mk_tmp, .fini = rm_tmp);

Test(registry_clamav_framing, empty_file_is_just_the_terminator) { frame_roundtrip(0, 7); }
Test(registry_clamav_framing, exact_multiple) { frame_roundtrip(70, 7); }
Test(registry_clamav_framing, ragged_last_chunk) { frame_roundtrip(71, 7); }
Test(registry_clamav_framing, one_byte_chunks) { frame_roundtrip(300, 1); }
Test(registry_clamav_framing, default_chunk_many_frames) { frame_roundtrip(3 * REGISTRY_CLAMD_DEFAULT_CHUNK + 5, REGISTRY_CLAMD_DEFAULT_CHUNK); }

Test(registry_clamav_framing, closed_peer_is_unavailable) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  close(sv[1]);
  int fd = file_of(1000);
  struct err e = {0};
  cr_assert_eq(registry_clamd_instream(sv[0], fd, 100, time_mono_us() + 60000000, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "clamd"), "%s", e.msg);
  close(fd);
  close(sv[0]);
}

Test(registry_clamav_framing, peer_that_stops_reading_hits_the_deadline) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  int fd = file_of(4 << 20); /* far more than the buffers hold */
  struct err e = {0};
  cr_assert_eq(registry_clamd_instream(sv[0], fd, 65536, time_mono_us() + 50000, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "timed out"), "%s", e.msg);
  close(fd);
  close(sv[0]);
  close(sv[1]);
}

/* ---- the client: addresses, and bounds against a scripted peer ---- */

TestSuite(registry_clamav_client, .init = mk_tmp, .fini = rm_tmp);

Test(registry_clamav_client, addresses) {
  const char *good[] = {"unix:/run/clamav/clamd.ctl", "tcp:127.0.0.1:3310", "tcp:clamd.internal:1", "tcp:[::1]:3310"};
  const char *bad[] = {"", "/run/clamav/clamd.ctl", "unix:", "unix:rel.sock", "tcp:", "tcp:host", "tcp::3310",
                       "tcp:host:0", "tcp:host:65536", "tcp:host:x", "tcp:::1:3310", "tcp:[::1]3310", "udp:h:1"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct registry_av *av = NULL;
    struct err e = {0};
    struct registry_clamd_opts o = {.address = good[i]};
    cr_assert_eq(registry_clamd_new(&av, &o, &e), 0, "%s: %s", good[i], e.msg);
    cr_assert_str_eq(registry_av_name(av), "clamd");
    registry_av_free(av);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct registry_av *av = NULL;
    struct err e = {0};
    struct registry_clamd_opts o = {.address = bad[i]};
    cr_assert_eq(registry_clamd_new(&av, &o, &e), -ERR_INVALID_PARAMETER_VALUE, "'%s' accepted", bad[i]);
    cr_assert_null(av);
    cr_assert(strstr(e.msg, "--clamd"), "%s", e.msg);
  }
}

/* A peer that reads a command and answers one canned reply (or, silent,
 * nothing until the client hangs up), for `conns` connections. */
struct peer {
  int lfd, conns;
  const char *reply;
  size_t reply_len;
  bool silent;
};

static void *peer_main(void *arg) {
  struct peer *p = arg;
  for (int i = 0; i < p->conns; i++) {
    int c = accept(p->lfd, NULL, NULL);
    if (c < 0) break;
    char buf[4096];
    ssize_t r = read(c, buf, sizeof buf); /* the command */
    (void)r;
    if (p->silent) {
      /* hold the connection until the client gives up */
      while (read(c, buf, sizeof buf) > 0) {
      }
    } else if (p->reply_len) {
      ssize_t w = write(c, p->reply, p->reply_len);
      (void)w;
    }
    close(c);
  }
  return NULL;
}

static struct registry_av *client_for(struct peer *p, pthread_t *th, int64_t timeout_ms) {
  char path[128];
  snprintf(path, sizeof path, "%s/c.sock", tmpdir);
  p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  str_copy(sa.sun_path, sizeof sa.sun_path, path);
  cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  cr_assert_eq(listen(p->lfd, 8), 0);
  cr_assert_eq(pthread_create(th, NULL, peer_main, p), 0);
  char addr[160];
  snprintf(addr, sizeof addr, "unix:%s", path);
  struct registry_clamd_opts o = {.address = addr, .timeout_ms = timeout_ms};
  struct registry_av *av = NULL;
  struct err e = {0};
  cr_assert_eq(registry_clamd_new(&av, &o, &e), 0, "%s", e.msg);
  return av;
}

static void peer_done(struct peer *p, pthread_t th) {
  shutdown(p->lfd, SHUT_RDWR);
  close(p->lfd);
  pthread_join(th, NULL);
}

Test(registry_clamav_client, nobody_listening_is_unavailable) {
  char addr[160];
  snprintf(addr, sizeof addr, "unix:%s/none.sock", tmpdir);
  struct registry_clamd_opts o = {.address = addr};
  struct registry_av *av = NULL;
  struct err e = {0};
  cr_assert_eq(registry_clamd_new(&av, &o, &e), 0);
  char engine[REGISTRY_AV_ENGINE_MAX + 1];
  cr_assert_eq(registry_av_check(av, engine, sizeof engine, &e), -ERR_UNAVAILABLE);
  struct registry_av_result r;
  cr_assert_eq(registry_av_scan_file(av, "/dev/null", &r, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "connect"), "%s", e.msg);
  registry_av_free(av);
}

Test(registry_clamav_client, silent_peer_times_out) {
  struct peer p = {.conns = 1, .silent = true};
  pthread_t th;
  struct registry_av *av = client_for(&p, &th, 100);
  char engine[REGISTRY_AV_ENGINE_MAX + 1];
  struct err e = {0};
  cr_assert_eq(registry_av_check(av, engine, sizeof engine, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "timed out"), "%s", e.msg);
  registry_av_free(av);
  peer_done(&p, th);
}

Test(registry_clamav_client, endless_reply_is_cut) {
  static char big[3 * REGISTRY_CLAMD_REPLY_MAX];
  memset(big, 'P', sizeof big);
  struct peer p = {.conns = 1, .reply = big, .reply_len = sizeof big};
  pthread_t th;
  struct registry_av *av = client_for(&p, &th, 5000);
  char engine[REGISTRY_AV_ENGINE_MAX + 1];
  struct err e = {0};
  cr_assert_eq(registry_av_check(av, engine, sizeof engine, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "longer than"), "%s", e.msg);
  registry_av_free(av);
  peer_done(&p, th);
}

Test(registry_clamav_client, wrong_ping_answer) {
  static const char pong[] = "PANG";
  struct peer p = {.conns = 1, .reply = pong, .reply_len = sizeof pong};
  pthread_t th;
  struct registry_av *av = client_for(&p, &th, 5000);
  char engine[REGISTRY_AV_ENGINE_MAX + 1];
  struct err e = {0};
  cr_assert_eq(registry_av_check(av, engine, sizeof engine, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "PONG"), "%s", e.msg);
  registry_av_free(av);
  peer_done(&p, th);
}

Test(registry_clamav_client, version_nonsense_stops_a_scan) {
  static const char v[] = "not clamav\x01";
  struct peer p = {.conns = 1, .reply = v, .reply_len = sizeof v};
  pthread_t th;
  struct registry_av *av = client_for(&p, &th, 5000);
  struct registry_av_result r;
  struct err e = {0};
  cr_assert_eq(registry_av_scan_file(av, "/dev/null", &r, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "VERSION"), "%s", e.msg);
  cr_assert_not(r.found);
  registry_av_free(av);
  peer_done(&p, th);
}
