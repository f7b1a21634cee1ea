/* auth/mail: outgoing mail (invitations) — the SMTP settings, RFC 5322
 * message text and delivery over SMTP/SMTPS with libcurl. Every header value
 * is checked against CR/LF before a message is built, so nothing a user
 * typed can add a header or a recipient. */
#include "auth.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAIL_TIMEOUT_DEFAULT_S 10
#define MAIL_ADDR_MAX 254
#define MAIL_HEADER_MAX 998 /* RFC 5322's hard line limit */

struct auth_mail {
  char *smtp_url;
  char *from_header; /* "Kiln <kiln@example.com>" as written into the header */
  char *from_addr;   /* "kiln@example.com": the envelope sender */
  char *user;
  char *password; /* wiped on free */
  char *public_url;
  bool require_starttls;
  int timeout_s;
  bool smtp; /* an SMTP server is configured */
  bool curl_ready;
};

/* ---- checks ------------------------------------------------------------- */

int auth_mail_header_check(const char *what, const char *value, struct err *e) {
  if (!value) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is required", what);
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)value; *p; p++, n++) {
    if (*p == '\r' || *p == '\n')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must not contain line breaks", what);
    if ((*p < ' ' && *p != '\t') || *p == 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must not contain control characters",
                     what);
  }
  if (n > MAIL_HEADER_MAX - 100)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is too long", what);
  return 0;
}

/* An addr-spec we are willing to put into MAIL FROM / RCPT TO: printable
 * ASCII without spaces, quotes, angle brackets or commas, one '@' with text
 * on both sides. Stricter than RFC 5321 on purpose. */
static int addr_check(const char *what, const char *addr, struct err *e) {
  int rc = auth_mail_header_check(what, addr, e);
  if (rc) return rc;
  size_t n = strlen(addr);
  if (n == 0 || n > MAIL_ADDR_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must be 1 to %d characters", what,
                   MAIL_ADDR_MAX);
  const char *at = strchr(addr, '@');
  if (!at || at == addr || !at[1] || strchr(at + 1, '@'))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must be an address like name@example.com",
                   what);
  for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
    if (*p <= ' ' || *p >= 0x7f || strchr("<>\"(),;:\\[]", *p))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "%s may not contain spaces, quotes, brackets or non-ASCII characters", what);
  return 0;
}

static bool ascii_only(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80) return false;
  return true;
}

/* ---- header encoding ---------------------------------------------------- */

/* A header value as RFC 2047 encoded words when it is not plain ASCII:
 * =?UTF-8?B?...?= chunks of at most 39 bytes (52 base64 characters, so a
 * word stays under 75 and "Subject: " plus one under 78), never splitting a
 * UTF-8 sequence, folded onto continuation lines. */
static int put_header_text(struct buf *b, const char *text) {
  if (ascii_only(text)) return buf_puts(b, text);
  size_t n = strlen(text), i = 0;
  while (i < n) {
    size_t take = n - i < 39 ? n - i : 39;
    while (take < n - i && take > 0 && ((unsigned char)text[i + take] & 0xC0) == 0x80) take--;
    if (take == 0) take = n - i < 39 ? n - i : 39; /* not UTF-8: cut anywhere */
    char b64[sodium_base64_ENCODED_LEN(39, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)text + i, take,
                      sodium_base64_VARIANT_ORIGINAL);
    int rc = buf_printf(b, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", b64);
    if (rc) return rc;
    i += take;
  }
  return 0;
}

/* "Name <addr>" or "addr" into its parts; the name may be quoted. */
static int from_parse(const char *from, char *name, size_t name_cap, char *addr, size_t addr_cap,
                      struct err *e) {
  int rc = auth_mail_header_check("smtp-from", from, e);
  if (rc) return rc;
  const char *lt = strchr(from, '<');
  name[0] = 0;
  if (!lt) {
    while (*from == ' ') from++;
    size_t n = strlen(from);
    while (n && from[n - 1] == ' ') n--;
    if (n >= addr_cap) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-from is too long");
    memcpy(addr, from, n);
    addr[n] = 0;
  } else {
    const char *gt = strchr(lt, '>');
    if (!gt || gt[1] != 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "smtp-from must be an address or \"Name <address>\"");
    size_t an = (size_t)(gt - lt - 1);
    if (an >= addr_cap) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-from is too long");
    memcpy(addr, lt + 1, an);
    addr[an] = 0;
    const char *s = from, *end = lt;
    while (s < end && *s == ' ') s++;
    while (end > s && end[-1] == ' ') end--;
    if (end - s >= 2 && *s == '"' && end[-1] == '"') s++, end--;
    size_t nn = (size_t)(end - s);
    if (nn >= name_cap) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-from is too long");
    memcpy(name, s, nn);
    name[nn] = 0;
  }
  return addr_check("smtp-from", addr, e);
}

/* The From header value: the name quoted (or encoded) and the address. */
static int from_header(const char *name, const char *addr, struct buf *out) {
  if (!name[0]) return buf_puts(out, addr);
  int rc;
  if (!ascii_only(name)) {
    rc = put_header_text(out, name);
  } else {
    rc = buf_putc(out, '"');
    for (const char *p = name; !rc && *p; p++) {
      if (*p == '"' || *p == '\\') rc = buf_putc(out, '\\');
      if (!rc) rc = buf_putc(out, *p);
    }
    if (!rc) rc = buf_putc(out, '"');
  }
  return rc ? rc : buf_printf(out, " <%s>", addr);
}

/* ---- settings ---------------------------------------------------------- */

void auth_mail_free(struct auth_mail *m) {
  if (!m) return;
  if (m->password) {
    sodium_memzero(m->password, strlen(m->password));
    free(m->password);
  }
  free(m->smtp_url);
  free(m->from_header);
  free(m->from_addr);
  free(m->user);
  free(m->public_url);
  if (m->curl_ready) curl_global_cleanup();
  free(m);
}

static int dup_into(char **dst, const char *src, struct err *e) {
  *dst = strdup(src ? src : "");
  return *dst ? 0 : err_set(e, ERR_NO_MEMORY, NULL);
}

/* http(s)://host[:port][/path] without a query, fragment, credentials or
 * whitespace; the trailing '/' is dropped so links join with one. */
static int public_url_check(const char *url, struct err *e) {
  if (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "public-url must start with http:// or https:// (like https://kiln.example.com)");
  const char *host = strstr(url, "://") + 3;
  if (!*host || *host == '/')
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "public-url needs a host name");
  for (const unsigned char *p = (const unsigned char *)url; *p; p++)
    if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#' || *p == '@' || *p == '"' || *p == '<' ||
        *p == '>' || *p == '\\')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "public-url must be a plain base URL (no spaces, credentials, query or "
                     "fragment)");
  if (strlen(url) > 512) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "public-url is too long");
  return 0;
}

static int smtp_url_check(const char *url, struct err *e) {
  bool plain = str_has_prefix(url, "smtp://"), tls = str_has_prefix(url, "smtps://");
  if (!plain && !tls)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "smtp-url must be smtp://host:port or smtps://host:port");
  const char *host = url + (plain ? 7 : 8);
  if (!*host || *host == '/' || *host == ':')
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-url needs a host name");
  size_t hl = strcspn(host, "/");
  if (memchr(host, '@', hl))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "smtp-url must not hold credentials; use smtp-user and smtp-password-file");
  for (const unsigned char *p = (const unsigned char *)url; *p; p++)
    if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-url must be smtp://host:port");
  if (strlen(url) > 512) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "smtp-url is too long");
  return 0;
}

int auth_mail_setup(struct auth *a, const struct auth_mail_opts *o, struct err *e) {
  struct auth_mail *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, ERR_NO_MEMORY, NULL);
  int rc = 0;
  const char *url = o && o->smtp_url ? o->smtp_url : "";
  const char *pub = o && o->public_url ? o->public_url : "";
  m->smtp = *url != 0;
  m->timeout_s = o && o->timeout_s > 0 ? o->timeout_s : MAIL_TIMEOUT_DEFAULT_S;
  m->require_starttls = o && o->require_starttls;
  if (*pub && (rc = public_url_check(pub, e))) goto fail;
  if ((rc = dup_into(&m->public_url, pub, e))) goto fail;
  for (size_t n = strlen(m->public_url); n && m->public_url[n - 1] == '/';) m->public_url[--n] = 0;
  if (m->smtp) {
    if ((rc = smtp_url_check(url, e))) goto fail;
    if (m->require_starttls && str_has_prefix(url, "smtps://")) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "smtp-starttls is for smtp:// URLs; smtps:// is TLS from the start");
      goto fail;
    }
    if (!o->from || !*o->from) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "smtp-from is required with smtp-url (the sender address of invitations)");
      goto fail;
    }
    char name[256], addr[MAIL_ADDR_MAX + 1];
    if ((rc = from_parse(o->from, name, sizeof name, addr, sizeof addr, e))) goto fail;
    struct buf fh;
    buf_init(&fh);
    if (from_header(name, addr, &fh) || !fh.data) {
      buf_fini(&fh);
      rc = err_set(e, ERR_NO_MEMORY, NULL);
      goto fail;
    }
    m->from_header = buf_steal(&fh);
    buf_fini(&fh);
    bool have_user = o->user && *o->user, have_pw = o->password && *o->password;
    if (have_user != have_pw) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   have_user ? "smtp-user needs a password (smtp-password-file or KILN_SMTP_PASSWORD)"
                             : "an SMTP password needs smtp-user");
      goto fail;
    }
    if ((rc = dup_into(&m->smtp_url, url, e)) || (rc = dup_into(&m->from_addr, addr, e)) ||
        (rc = dup_into(&m->user, o->user, e)) || (rc = dup_into(&m->password, o->password, e)))
      goto fail;
    /* before any thread exists: curl_global_init is not thread-safe */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      rc = err_set(e, ERR_INTERNAL, "cannot initialise libcurl");
      goto fail;
    }
    m->curl_ready = true;
  }
  auth_mail_free(*auth_mail_slot(a));
  *auth_mail_slot(a) = m;
  return 0;
fail:
  auth_mail_free(m);
  return rc;
}

bool auth_mail_enabled(struct auth *a) {
  const struct auth_mail *m = *auth_mail_slot(a);
  return m && m->smtp;
}

const char *auth_public_url(struct auth *a) {
  const struct auth_mail *m = *auth_mail_slot(a);
  return m && m->public_url ? m->public_url : "";
}

/* ---- messages ---------------------------------------------------------- */

/* RFC 5322 date-time in UTC, without the locale's day and month names. */
static void rfc5322_date(int64_t ms, char out[40]) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
           months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int auth_mail_build(const struct auth_mail_msg *m, struct buf *out, struct err *e) {
  int rc;
  if ((rc = auth_mail_header_check("From", m->from, e)) ||
      (rc = auth_mail_header_check("To", m->to, e)) ||
      (rc = auth_mail_header_check("Subject", m->subject, e)) ||
      (rc = auth_mail_header_check("Message-ID", m->message_id, e)))
    return rc;
  if (!m->body) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the message needs a body");
  char date[40];
  rfc5322_date(m->date_ms, date);
  if (buf_printf(out, "From: %s\r\nTo: %s\r\nSubject: ", m->from, m->to) ||
      put_header_text(out, m->subject) ||
      buf_printf(out,
                 "\r\nDate: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                 "Auto-Submitted: auto-generated\r\n\r\n",
                 date, m->message_id))
    return err_set(e, ERR_NO_MEMORY, NULL);
  /* every line ends in CRLF, whatever the text used; lines starting with a
   * dot are left alone: curl dot-stuffs them on the wire */
  for (const char *p = m->body; *p; p++) {
    if (*p == '\r') {
      if (p[1] == '\n') p++;
      rc = buf_puts(out, "\r\n");
    } else if (*p == '\n') {
      rc = buf_puts(out, "\r\n");
    } else {
      rc = buf_putc(out, *p);
    }
    if (rc) return err_set(e, ERR_NO_MEMORY, NULL);
  }
  if (out->len < 2 || out->data[out->len - 2] != '\r' || out->data[out->len - 1] != '\n')
    if (buf_puts(out, "\r\n")) return err_set(e, ERR_NO_MEMORY, NULL);
  return 0;
}

/* ---- delivery ------------------------------------------------------------ */

struct upload {
  const char *data;
  size_t len, off;
};

static size_t upload_read(char *dst, size_t size, size_t nitems, void *arg) {
  struct upload *u = arg;
  size_t room = size * nitems, left = u->len - u->off;
  size_t n = left < room ? left : room;
  memcpy(dst, u->data + u->off, n);
  u->off += n;
  return n;
}

/* curl's messages quote the server's reply; keep one line of printable text. */
static void one_line(char *s) {
  for (char *p = s; *p; p++)
    if ((unsigned char)*p < ' ' || *p == 0x7f) *p = ' ';
  size_t n = strlen(s);
  while (n && s[n - 1] == ' ') s[--n] = 0;
}

int auth_mail_send(struct auth *a, const char *to, const char *subject, const char *body,
                   struct err *e) {
  const struct auth_mail *m = *auth_mail_slot(a);
  if (!m || !m->smtp) return err_set(e, ERR_NOT_READY, "no SMTP server is configured");
  int rc = addr_check("recipient address", to, e);
  if (rc) return rc;
  char mid[AUTH_ID_LEN + MAIL_ADDR_MAX + 2];
  id_random_hex(mid, AUTH_ID_LEN / 2);
  const char *domain = strchr(m->from_addr, '@') + 1;
  size_t ml = strlen(mid);
  snprintf(mid + ml, sizeof mid - ml, "@%s", domain);
  struct auth_mail_msg msg = {.from = m->from_header, .to = to, .subject = subject, .body = body,
                              .date_ms = time_wall_ms(), .message_id = mid};
  struct buf text;
  buf_init(&text);
  if ((rc = auth_mail_build(&msg, &text, e))) {
    buf_fini(&text);
    return rc;
  }
  CURL *h = curl_easy_init();
  if (!h) {
    buf_fini(&text);
    return err_set(e, ERR_NO_MEMORY, "cannot start an SMTP client");
  }
  char sender[MAIL_ADDR_MAX + 3], rcpt[MAIL_ADDR_MAX + 3], errbuf[CURL_ERROR_SIZE] = "";
  snprintf(sender, sizeof sender, "<%s>", m->from_addr);
  snprintf(rcpt, sizeof rcpt, "<%s>", to);
  struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
  struct upload up = {.data = text.data, .len = text.len};
  curl_easy_setopt(h, CURLOPT_URL, m->smtp_url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, sender);
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &up);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)text.len);
  /* the request thread waits for this: bound every step, no signals */
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)m->timeout_s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)m->timeout_s);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  /* smtp:// upgrades with STARTTLS when offered (required with
   * smtp-starttls); certificates are always verified */
  curl_easy_setopt(h, CURLOPT_USE_SSL, m->require_starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
  if (m->user[0]) {
    curl_easy_setopt(h, CURLOPT_USERNAME, m->user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, m->password);
  }
  CURLcode cc = curl_easy_perform(h);
  curl_slist_free_all(rcpts);
  curl_easy_cleanup(h);
  if (text.data) sodium_memzero(text.data, text.len); /* links in it hold tokens */
  buf_fini(&text);
  if (cc == CURLE_OK) return 0;
  one_line(errbuf);
  const char *what = curl_easy_strerror(cc);
  if (errbuf[0] && !str_eq(errbuf, what))
    return err_set(e, ERR_UNAVAILABLE, "the SMTP server did not take the message: %s (%s)", what,
                   errbuf);
  return err_set(e, ERR_UNAVAILABLE, "the SMTP server did not take the message: %s", what);
}
