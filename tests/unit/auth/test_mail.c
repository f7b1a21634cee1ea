/* tests for auth/mail: header checks, the RFC 5322 text, the settings'
 * validation, and delivery through libcurl to a tiny SMTP server on a
 * loopback port (what goes over the wire, dot-stuffing included). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;

static void setup(void) { auth_fixture_open("kiln-mail", dir, &db, &au); }
static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(mail, .init = setup, .fini = teardown);

/* ---- headers and text --------------------------------------------------- */

Test(mail, header_values_with_line_breaks_or_controls_are_refused) {
  struct err e;
  cr_assert_eq(auth_mail_header_check("To", "bob@example.com", &e), 0);
  cr_assert_eq(auth_mail_header_check("Subject", "tab\tand UTF-8: café", &e), 0);
  const char *bad[] = {"a@example.com\r\nBcc: x@example.com", "a@example.com\nBcc: x@example.com",
                       "a@example.com\rx", "nul\x01", "del\x7f"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(auth_mail_header_check("To", bad[i], &e), -ERR_INVALID_PARAMETER_VALUE, "%zu", i);
    cr_assert(strstr(e.msg, "To must not contain"), "%s", e.msg);
  }
}

static char *build(const struct auth_mail_msg *m, int *rc) {
  struct buf b;
  buf_init(&b);
  struct err e;
  *rc = auth_mail_build(m, &b, &e);
  if (*rc) {
    buf_fini(&b);
    return NULL;
  }
  return buf_steal(&b);
}

Test(mail, a_message_has_every_header_and_crlf_line_ends) {
  struct auth_mail_msg m = {.from = "\"Kiln\" <kiln@example.com>",
                            .to = "bob@example.com",
                            .subject = "You are invited",
                            .body = "Hello,\n\n.a line starting with a dot\r\nlone CR\rend",
                            .message_id = "abc@example.com",
                            .date_ms = 1893456000000LL}; /* 2030-01-01 00:00:00 UTC */
  int rc;
  char *t = build(&m, &rc);
  cr_assert_eq(rc, 0);
  const char *want =
      "From: \"Kiln\" <kiln@example.com>\r\n"
      "To: bob@example.com\r\n"
      "Subject: You are invited\r\n"
      "Date: Tue, 01 Jan 2030 00:00:00 +0000\r\n"
      "Message-ID: <abc@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "Auto-Submitted: auto-generated\r\n"
      "\r\n"
      "Hello,\r\n\r\n.a line starting with a dot\r\nlone CR\r\nend\r\n";
  cr_assert_str_eq(t, want);
  free(t);
}

Test(mail, injection_through_any_header_is_refused) {
  struct auth_mail_msg m = {.from = "kiln@example.com", .to = "bob@example.com", .subject = "hi",
                            .body = "x", .message_id = "id@example.com", .date_ms = 0};
  int rc;
  m.to = "bob@example.com\r\nBcc: all@example.com";
  cr_assert_null(build(&m, &rc));
  cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE);
  m.to = "bob@example.com";
  m.subject = "hi\nX-Evil: 1";
  cr_assert_null(build(&m, &rc));
  m.subject = "hi";
  m.from = "kiln@example.com\r\nTo: x@example.com";
  cr_assert_null(build(&m, &rc));
}

/* Decodes the encoded words of a Subject header back into UTF-8. */
static void decode_words(const char *hdr, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = strstr(hdr, "=?UTF-8?B?"); p; p = strstr(p, "=?UTF-8?B?")) {
    p += 10;
    const char *end = strstr(p, "?=");
    cr_assert_not_null(end);
    size_t n;
    cr_assert_eq(sodium_base642bin((unsigned char *)out + o, cap - o - 1, p, (size_t)(end - p), NULL,
                                   &n, NULL, sodium_base64_VARIANT_ORIGINAL),
                 0);
    /* every word holds whole characters */
    cr_assert_neq((unsigned char)out[o] & 0xC0, 0x80);
    o += n;
    p = end + 2;
  }
  out[o] = 0;
}

Test(mail, a_non_ascii_subject_becomes_folded_encoded_words) {
  char subject[400] = "";
  for (size_t i = 0, o = 0; i < 30; i++) o += str_copy(subject + o, sizeof subject - o, "Grüße ");
  struct auth_mail_msg m = {.from = "kiln@example.com", .to = "bob@example.com",
                            .subject = subject, .body = "x", .message_id = "i@example.com"};
  int rc;
  char *t = build(&m, &rc);
  cr_assert_eq(rc, 0);
  char *s = strstr(t, "Subject: "), *end = strstr(s, "\r\nDate: ");
  *end = 0;
  cr_assert(strstr(s, "\r\n =?UTF-8?B?"), "long subjects are folded: %s", s);
  for (char *line = s; line; line = strstr(line + 1, "\r\n")) {
    char *next = strstr(line + 2, "\r\n");
    size_t len = next ? (size_t)(next - line) : strlen(line);
    cr_assert_leq(len, 80, "line too long: %.*s", (int)len, line);
  }
  char decoded[400];
  decode_words(s, decoded, sizeof decoded);
  cr_assert_str_eq(decoded, subject);
  free(t);
}

/* ---- settings ------------------------------------------------------------ */

static int setup_with(const char *url, const char *from, const char *user, const char *pw,
                      bool starttls, const char *pub, struct err *e) {
  struct auth_mail_opts o = {.smtp_url = url, .from = from, .user = user, .password = pw,
                             .require_starttls = starttls, .public_url = pub};
  return auth_mail_setup(au, &o, e);
}

Test(mail, settings_are_checked_at_start) {
  struct err e;
  cr_assert_not(auth_mail_enabled(au));
  cr_assert_str_eq(auth_public_url(au), "");
  cr_assert_eq(setup_with("", NULL, NULL, NULL, false, "https://kiln.example.com//", &e), 0, "%s",
               e.msg);
  cr_assert_not(auth_mail_enabled(au));
  cr_assert_str_eq(auth_public_url(au), "https://kiln.example.com");
  struct {
    const char *url, *from, *user, *pw, *pub;
    bool tls;
    const char *says;
  } bad[] = {
      {"http://mail.example.com", "k@example.com", NULL, NULL, NULL, false, "smtp://"},
      {"smtp://u:secret@mail.example.com:25", "k@example.com", NULL, NULL, NULL, false, "credentials"},
      {"smtp://mail.example.com", NULL, NULL, NULL, NULL, false, "smtp-from is required"},
      {"smtp://mail.example.com", "not an address", NULL, NULL, NULL, false, "smtp-from"},
      {"smtp://mail.example.com", "Kiln <k@example.com", NULL, NULL, NULL, false, "smtp-from"},
      {"smtp://mail.example.com", "k@example.com\r\nBcc: x@y.z", NULL, NULL, NULL, false, "line"},
      {"smtp://mail.example.com", "k@example.com", "kiln", NULL, NULL, false, "password"},
      {"smtp://mail.example.com", "k@example.com", NULL, "pw", NULL, false, "smtp-user"},
      {"smtps://mail.example.com", "k@example.com", NULL, NULL, NULL, true, "smtps://"},
      {"", NULL, NULL, NULL, "kiln.example.com", false, "public-url"},
      {"", NULL, NULL, NULL, "https://kiln.example.com/?next=evil", false, "public-url"},
      {"", NULL, NULL, NULL, "https://user@kiln.example.com", false, "public-url"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(setup_with(bad[i].url, bad[i].from, bad[i].user, bad[i].pw, bad[i].tls, bad[i].pub, &e),
                 -ERR_INVALID_PARAMETER_VALUE, "case %zu", i);
    cr_assert(strstr(e.msg, bad[i].says), "case %zu: %s", i, e.msg);
    cr_assert_null(strstr(e.msg, "secret"), "no secrets in messages: %s", e.msg);
  }
  /* a failed setup keeps what was there */
  cr_assert_str_eq(auth_public_url(au), "https://kiln.example.com");
  cr_assert_eq(setup_with("smtp://mail.example.com:587", "Kiln <k@example.com>", "kiln", "pw", true,
                          "", &e),
               0, "%s", e.msg);
  cr_assert(auth_mail_enabled(au));
}

Test(mail, sending_without_smtp_or_to_a_bad_address_fails_cleanly) {
  struct err e;
  cr_assert_eq(auth_mail_send(au, "bob@example.com", "s", "b", &e), -ERR_NOT_READY);
  cr_assert_eq(setup_with("smtp://127.0.0.1:1", "k@example.com", NULL, NULL, false, "", &e), 0);
  cr_assert_eq(auth_mail_send(au, "bob@example.com\r\nRCPT TO:<x@y.z>", "s", "b", &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_mail_send(au, "bob", "s", "b", &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(mail, a_closed_port_is_an_unavailable_error_without_secrets) {
  struct err e;
  /* port 1 on loopback: nothing listens, the connect is refused at once */
  cr_assert_eq(setup_with("smtp://127.0.0.1:1", "k@example.com", "kiln", "Pass-Word-Secret", false,
                          "", &e),
               0, "%s", e.msg);
  int64_t t0 = time_mono_us();
  cr_assert_eq(auth_mail_send(au, "bob@example.com", "s", "b", &e), -ERR_UNAVAILABLE);
  cr_assert_lt(time_mono_us() - t0, 10 * 1000000LL);
  cr_assert(strstr(e.msg, "connect"), "%s", e.msg);
  cr_assert_null(strstr(e.msg, "Pass-Word-Secret"), "%s", e.msg);
}

/* ---- a tiny SMTP server: one connection, everything recorded ------------- */

struct fake_smtp {
  int listen_fd, port;
  char received[16384]; /* every byte the client sent */
  size_t n;
  pthread_t thread;
};

static bool read_line(struct fake_smtp *s, int fd, char *line, size_t cap) {
  size_t o = 0;
  while (o + 1 < cap) {
    char ch;
    if (read(fd, &ch, 1) != 1) return false;
    if (s->n + 1 < sizeof s->received) s->received[s->n++] = ch;
    line[o++] = ch;
    if (ch == '\n') break;
  }
  line[o] = 0;
  return true;
}

static void say(int fd, const char *text) { cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text)); }

static void *fake_smtp_run(void *arg) {
  struct fake_smtp *s = arg;
  int fd = accept(s->listen_fd, NULL, NULL);
  if (fd < 0) return NULL;
  say(fd, "220 fake ESMTP\r\n");
  char line[2048];
  bool data = false;
  while (read_line(s, fd, line, sizeof line)) {
    if (data) {
      if (strcmp(line, ".\r\n") == 0) {
        data = false;
        say(fd, "250 queued\r\n");
      }
      continue;
    }
    if (strncmp(line, "EHLO", 4) == 0) say(fd, "250-fake\r\n250 8BITMIME\r\n");
    else if (strncmp(line, "DATA", 4) == 0) {
      data = true;
      say(fd, "354 go ahead\r\n");
    } else if (strncmp(line, "QUIT", 4) == 0) {
      say(fd, "221 bye\r\n");
      break;
    } else say(fd, "250 ok\r\n");
  }
  close(fd);
  return NULL;
}

static void fake_smtp_start(struct fake_smtp *s) {
  memset(s, 0, sizeof *s);
  s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(s->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(s->listen_fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(s->listen_fd, (struct sockaddr *)&a, &len);
  s->port = ntohs(a.sin_port);
  pthread_create(&s->thread, NULL, fake_smtp_run, s);
}

static void fake_smtp_stop(struct fake_smtp *s) {
  pthread_join(s->thread, NULL);
  close(s->listen_fd);
  s->received[s->n] = 0;
}

Test(mail, delivery_speaks_smtp_and_curl_dot_stuffs_the_body) {
  struct fake_smtp s;
  fake_smtp_start(&s);
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s.port);
  struct err e;
  cr_assert_eq(setup_with(url, "Kiln \"Ops\" <ops@kiln.test>", NULL, NULL, false, "", &e), 0, "%s",
               e.msg);
  cr_assert_eq(auth_mail_send(au, "bob@example.com", "Hello", "first\n.\n.hidden\nlast", &e), 0,
               "%s", e.msg);
  fake_smtp_stop(&s);
  cr_assert(strstr(s.received, "MAIL FROM:<ops@kiln.test>"), "%s", s.received);
  cr_assert(strstr(s.received, "RCPT TO:<bob@example.com>"), "%s", s.received);
  cr_assert(strstr(s.received, "From: \"Kiln \\\"Ops\\\"\" <ops@kiln.test>\r\n"), "%s", s.received);
  cr_assert(strstr(s.received, "Message-ID: <"), "%s", s.received);
  cr_assert(strstr(s.received, "@kiln.test>\r\n"), "%s", s.received);
  /* a line of one dot would end the message early: curl doubles leading dots */
  cr_assert(strstr(s.received, "\r\nfirst\r\n..\r\n..hidden\r\nlast\r\n.\r\n"), "%s", s.received);
}
