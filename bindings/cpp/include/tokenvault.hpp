// tokenvault.hpp — a header-only C++17 RAII wrapper over the C API (tokenvault.h).
//
// * Handles are move-only objects that free what they own: tv::Vault, tv::Token (zeroes the
//   token's bytes), tv::HttpRequest.
// * Fallible calls return tv::Result<T>, a small expected-style type: test it (`if (r)`,
//   `r.ok()`), then read `r.value()` or `r.error()`. Nothing here throws, so the wrapper builds
//   with -fno-exceptions (as Unreal and many engines do); `value()` on an error, like
//   `error()` on a success, is a bug and calls std::abort().
// * Callbacks are any callables (lambdas with captures included); the library owns a copy and
//   destroys it when the callback is replaced or the vault is freed. They must not throw.
//
// The rules of the C API apply unchanged (see the preamble of tokenvault.h): a Vault may be
// used from any number of threads at once; its destruction must be the last use.
#ifndef TOKENVAULT_HPP
#define TOKENVAULT_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenvault.h"

namespace tv {

/// The C API's status, as a scoped enum with the same numbers.
enum class Status : int32_t {
  Ok = TV_OK,
  ReauthenticationRequired = TV_REAUTHENTICATION_REQUIRED,
  Transient = TV_TRANSIENT,
  Throttled = TV_THROTTLED,
  StorageUnavailable = TV_STORAGE_UNAVAILABLE,
  WrongKey = TV_WRONG_KEY,
  Corrupt = TV_CORRUPT,
  NotFound = TV_NOT_FOUND,
  InvalidInput = TV_INVALID_INPUT,
  Protocol = TV_PROTOCOL,
  Internal = TV_INTERNAL,
  SchemaTooNew = TV_SCHEMA_TOO_NEW,
  RefreshOutcomeUnknown = TV_REFRESH_OUTCOME_UNKNOWN,
  Closed = TV_CLOSED,
};

/// A stable name, e.g. "wrong_key".
inline const char *status_name(Status s) noexcept { return tv_status_name(static_cast<int32_t>(s)); }

/// The library version, e.g. "0.1.0".
inline const char *version() noexcept { return tv_version(); }

/// A failed call: its status and the library's message (never a secret).
class Error {
 public:
  Error(Status status, std::string message) : status_(status), message_(std::move(message)) {}
  Status status() const noexcept { return status_; }
  const std::string &message() const noexcept { return message_; }

  /// The error of the call that just failed on this thread.
  static Error last(tv_status status) {
    char small[512];
    size_t len = 0;
    std::string message;
    if (tv_last_error_message(small, sizeof small, &len) == TV_OK) {
      message.assign(small, len);
    } else {
      message.resize(len + 1);
      if (tv_last_error_message(&message[0], message.size(), &len) == TV_OK) message.resize(len);
      else message.clear();
    }
    return Error(static_cast<Status>(status), std::move(message));
  }

 private:
  Status status_;
  std::string message_;
};

namespace detail {
[[noreturn]] inline void misuse() noexcept { std::abort(); }
}  // namespace detail

/// A value or an Error (a small std::expected for C++17, without exceptions).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : ok_(true) { new (&storage_.value) T(std::move(value)); }  // NOLINT: implicit by design
  Result(Error error) : ok_(false) { new (&storage_.error) Error(std::move(error)); }  // NOLINT
  Result(Result &&other) noexcept(std::is_nothrow_move_constructible<T>::value) : ok_(other.ok_) {
    if (ok_) new (&storage_.value) T(std::move(other.storage_.value));
    else new (&storage_.error) Error(std::move(other.storage_.error));
  }
  Result(const Result &) = delete;
  Result &operator=(const Result &) = delete;
  Result &operator=(Result &&) = delete;
  ~Result() {
    if (ok_) storage_.value.~T();
    else storage_.error.~Error();
  }

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  /// Status::Ok on success.
  Status status() const noexcept { return ok_ ? Status::Ok : storage_.error.status(); }

  T &value() & noexcept { return ok_ ? storage_.value : (detail::misuse(), storage_.value); }
  const T &value() const & noexcept { return ok_ ? storage_.value : (detail::misuse(), storage_.value); }
  T &&value() && noexcept { return std::move(ok_ ? storage_.value : (detail::misuse(), storage_.value)); }
  T *operator->() noexcept { return &value(); }
  T &operator*() & noexcept { return value(); }

  template <class U>
  T value_or(U &&fallback) const & {
    return ok_ ? storage_.value : static_cast<T>(std::forward<U>(fallback));
  }

  const Error &error() const noexcept { return ok_ ? (detail::misuse(), storage_.error) : storage_.error; }

 private:
  union Storage {
    Storage() {}
    ~Storage() {}
    T value;
    Error error;
  } storage_;
  bool ok_;
};

/// Success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  Status status() const noexcept { return ok_ ? Status::Ok : error_.status(); }
  const Error &error() const noexcept { return ok_ ? (detail::misuse(), error_) : error_; }

 private:
  Error error_{Status::Ok, std::string()};
  bool ok_ = true;
};

namespace detail {
inline Result<void> check(tv_status s) {
  if (s == TV_OK) return Result<void>();
  return Error::last(s);
}

/// A NUL-terminated string argument: a `const char *` or a `std::string`.
class zstring {
 public:
  zstring(const char *s) noexcept : p_(s) {}         // NOLINT: implicit by design
  zstring(const std::string &s) noexcept : p_(s.c_str()) {}  // NOLINT
  const char *c_str() const noexcept { return p_; }

 private:
  const char *p_;
};
}  // namespace detail

/// An access token in library memory, zeroed and freed when destroyed. Move-only.
class Token {
 public:
  Token() noexcept : buf_{nullptr, 0} {}
  Token(tv_buf buf, uint64_t generation) noexcept : buf_(buf), generation_(generation) {}
  Token(Token &&o) noexcept : buf_(o.buf_), generation_(o.generation_) { o.buf_ = tv_buf{nullptr, 0}; }
  Token &operator=(Token &&o) noexcept {
    if (this != &o) {
      tv_buf_free(&buf_);
      buf_ = o.buf_;
      generation_ = o.generation_;
      o.buf_ = tv_buf{nullptr, 0};
    }
    return *this;
  }
  Token(const Token &) = delete;
  Token &operator=(const Token &) = delete;
  ~Token() { tv_buf_free(&buf_); }

  /// The token text (e.g. for `Authorization: Bearer ...`), valid while this object lives.
  std::string_view view() const noexcept { return buf_.data ? std::string_view(buf_.data, buf_.len) : std::string_view(); }
  const char *c_str() const noexcept { return buf_.data ? buf_.data : ""; }
  /// The generation of the stored pair it belongs to.
  uint64_t generation() const noexcept { return generation_; }

 private:
  tv_buf buf_;
  uint64_t generation_ = 0;
};

/// A session to store (strings are copied by the library during the call).
struct Session {
  std::string account;
  std::string profile;
  std::string access_token;
  std::string refresh_credential;  // empty: none
  std::chrono::seconds expires_in{0};          // 0: unknown
  std::chrono::seconds refresh_expires_in{0};  // 0: unknown
  bool offline = false;
  std::string token_type;  // empty: none
  std::string scope;       // empty: none
  std::string hints_json;  // empty: none; else a JSON object of strings
};

/// A session's facts (tv_session_info).
using SessionInfo = tv_session_info;

/// One header of a request or response.
struct Header {
  std::string_view name;
  std::string_view value;
};

/// A request the host performs itself (owned: from Vault::begin_refresh) or borrowed (inside a
/// transport callback). Move-only; header values and body are credentials.
class HttpRequest {
 public:
  HttpRequest() noexcept = default;
  HttpRequest(HttpRequest &&o) noexcept : p_(o.p_), owned_(o.owned_) { o.p_ = nullptr; }
  HttpRequest &operator=(HttpRequest &&o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_;
      owned_ = o.owned_;
      o.p_ = nullptr;
    }
    return *this;
  }
  HttpRequest(const HttpRequest &) = delete;
  HttpRequest &operator=(const HttpRequest &) = delete;
  ~HttpRequest() { reset(); }

  static HttpRequest owning(tv_http_request *p) noexcept { return HttpRequest(p, true); }
  static HttpRequest borrowing(const tv_http_request *p) noexcept {
    return HttpRequest(const_cast<tv_http_request *>(p), false);
  }

  explicit operator bool() const noexcept { return p_ != nullptr; }
  const tv_http_request *native() const noexcept { return p_; }

  std::string_view method() const noexcept {
    const char *s = nullptr;
    return tv_http_request_method(p_, &s) == TV_OK ? std::string_view(s) : std::string_view();
  }
  std::string_view url() const noexcept {
    const char *s = nullptr;
    return tv_http_request_url(p_, &s) == TV_OK ? std::string_view(s) : std::string_view();
  }
  std::vector<Header> headers() const {
    size_t n = 0;
    std::vector<Header> out;
    if (tv_http_request_header_count(p_, &n) != TV_OK) return out;
    out.reserve(n);
    for (size_t i = 0; i < n; i++) {
      const char *name = nullptr, *value = nullptr;
      if (tv_http_request_header(p_, i, &name, &value) == TV_OK) out.push_back(Header{name, value});
    }
    return out;
  }
  std::string_view body() const noexcept {
    const uint8_t *b = nullptr;
    size_t len = 0;
    return tv_http_request_body(p_, &b, &len) == TV_OK ? std::string_view(reinterpret_cast<const char *>(b), len)
                                                       : std::string_view();
  }
  std::chrono::milliseconds timeout() const noexcept {
    uint64_t ms = 0;
    tv_http_request_timeout_ms(p_, &ms);
    return std::chrono::milliseconds(static_cast<int64_t>(ms));
  }
  size_t max_response_bytes() const noexcept {
    size_t n = 0;
    tv_http_request_max_response_bytes(p_, &n);
    return n;
  }
  /// Whether plain `http://` is allowed (loopback, or `allow_http`); refuse it otherwise with
  /// `TransportResult::InsecureScheme` before connecting.
  bool allows_plain_http() const noexcept {
    uint8_t allowed = 0;
    return tv_http_request_allows_plain_http(p_, &allowed) == TV_OK && allowed != 0;
  }
  /// Certificate pins (`sha256/<base64>` of the SPKI's SHA-256); when not empty, a transport
  /// must find one in the presented chain, on top of normal validation, or send nothing and
  /// return `TransportResult::CertificatePin`.
  std::vector<std::string_view> pins() const {
    size_t n = 0;
    std::vector<std::string_view> out;
    if (tv_http_request_pin_count(p_, &n) != TV_OK) return out;
    out.reserve(n);
    for (size_t i = 0; i < n; i++) {
      const char *pin = nullptr;
      if (tv_http_request_pin(p_, i, &pin) == TV_OK) out.emplace_back(pin);
    }
    return out;
  }

 private:
  HttpRequest(tv_http_request *p, bool owned) noexcept : p_(p), owned_(owned) {}
  void reset() noexcept {
    if (owned_) tv_http_request_free(p_);
    p_ = nullptr;
  }
  tv_http_request *p_ = nullptr;
  bool owned_ = false;
};

/// Fills the response inside a transport callback.
class HttpResponseWriter {
 public:
  explicit HttpResponseWriter(tv_http_response *r) noexcept : r_(r) {}
  Result<void> set_status(uint16_t status) { return detail::check(tv_http_response_set_status(r_, status)); }
  Result<void> add_header(detail::zstring name, detail::zstring value) {
    return detail::check(tv_http_response_add_header(r_, name.c_str(), value.c_str()));
  }
  Result<void> append_body(const void *data, size_t len) {
    return detail::check(tv_http_response_append_body(r_, static_cast<const uint8_t *>(data), len));
  }
  Result<void> append_body(std::string_view s) { return append_body(s.data(), s.size()); }

 private:
  tv_http_response *r_;
};

/// Outcome of a transport callback (tv_transport_result).
enum class TransportResult : int32_t {
  Ok = TV_TRANSPORT_OK,
  Timeout = TV_TRANSPORT_TIMEOUT,
  Connect = TV_TRANSPORT_CONNECT,
  Io = TV_TRANSPORT_IO,
  TooLarge = TV_TRANSPORT_TOO_LARGE,
  Other = TV_TRANSPORT_OTHER,
  CertificatePin = TV_TRANSPORT_CERTIFICATE_PIN,
  InsecureScheme = TV_TRANSPORT_INSECURE_SCHEME,
};

/// One vault event; the views are valid only during the callback.
struct Event {
  tv_event_kind kind;
  std::string_view account;
  uint64_t generation;
  int64_t access_remaining_ms;
  bool has_session_remaining;
  int64_t session_remaining_ms;
  std::string_view reason;
};

/// What Vault::begin_refresh decided; `request` is set for TV_REFRESH_SEND.
struct RefreshBegin {
  tv_refresh_step step;
  uint64_t attempt;
  HttpRequest request;
};

/// An open vault. Move-only; destroying it frees the handle (closing the vault first).
class Vault {
 public:
  Vault() noexcept = default;
  Vault(Vault &&o) noexcept : v_(o.v_) { o.v_ = nullptr; }
  Vault &operator=(Vault &&o) noexcept {
    if (this != &o) {
      tv_vault_free(v_);
      v_ = o.v_;
      o.v_ = nullptr;
    }
    return *this;
  }
  Vault(const Vault &) = delete;
  Vault &operator=(const Vault &) = delete;
  ~Vault() { tv_vault_free(v_); }

  /// Open (or create) with a 32-byte raw key.
  static Result<Vault> open_with_key(detail::zstring path, const uint8_t *key, size_t key_len) {
    tv_vault *v = nullptr;
    tv_status s = tv_vault_open_with_key(path.c_str(), key, key_len, &v);
    if (s != TV_OK) return Error::last(s);
    return Vault(v);
  }
  /// Open (or create) with a passphrase.
  static Result<Vault> open_with_passphrase(detail::zstring path, detail::zstring passphrase) {
    tv_vault *v = nullptr;
    tv_status s = tv_vault_open_with_passphrase(path.c_str(), passphrase.c_str(), &v);
    if (s != TV_OK) return Error::last(s);
    return Vault(v);
  }

  /// Open (or create) with options (fill them with tv_open_options_init first): exactly one of
  /// `key` (32 bytes) and `passphrase` (the other nullptr).
  static Result<Vault> open_with_options(detail::zstring path, const uint8_t *key, size_t key_len, const char *passphrase,
                                         const tv_open_options &options) {
    tv_vault *v = nullptr;
    tv_status s = tv_vault_open_with_options(path.c_str(), key, key_len, passphrase, &options, &v);
    if (s != TV_OK) return Error::last(s);
    return Vault(v);
  }

  explicit operator bool() const noexcept { return v_ != nullptr; }
  /// The C handle, for calls this wrapper does not cover. Still owned by this object.
  const tv_vault *native() const noexcept { return v_; }

  Result<void> close() { return detail::check(tv_vault_close(v_)); }
  Result<void> load_profile_json(detail::zstring json) { return detail::check(tv_vault_load_profile_json(v_, json.c_str())); }

  Result<SessionInfo> store(const Session &s) {
    tv_session_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.account = s.account.c_str();
    p.profile = s.profile.c_str();
    p.access_token = s.access_token.c_str();
    p.refresh_credential = s.refresh_credential.empty() ? nullptr : s.refresh_credential.c_str();
    p.expires_in_secs = static_cast<int64_t>(s.expires_in.count());
    p.refresh_expires_in_secs = static_cast<int64_t>(s.refresh_expires_in.count());
    p.offline = s.offline ? 1 : 0;
    p.token_type = s.token_type.empty() ? nullptr : s.token_type.c_str();
    p.scope = s.scope.empty() ? nullptr : s.scope.c_str();
    p.hints_json = s.hints_json.empty() ? nullptr : s.hints_json.c_str();
    SessionInfo info = blank_info();
    tv_status st = tv_vault_store(v_, &p, &info);
    if (st != TV_OK) return Error::last(st);
    return info;
  }

  /// Store a session from the login answer as the server wrote it (tv_vault_store_response):
  /// `date_header` and `refresh_credential` may be nullptr.
  Result<SessionInfo> store_response(detail::zstring account, detail::zstring profile, std::string_view body,
                                     const char *date_header = nullptr, const char *refresh_credential = nullptr) {
    SessionInfo info = blank_info();
    tv_status st = tv_vault_store_response(v_, account.c_str(), profile.c_str(),
                                           reinterpret_cast<const uint8_t *>(body.data()), body.size(), date_header,
                                           refresh_credential, &info);
    if (st != TV_OK) return Error::last(st);
    return info;
  }

  /// What the vault did since it was opened (tv_vault_metrics).
  Result<tv_metrics> metrics() {
    tv_metrics m;
    std::memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    tv_status s = tv_vault_metrics(v_, &m);
    if (s != TV_OK) return Error::last(s);
    return m;
  }

  /// The hot path: copy a valid token into `buf`; returns its length. If the buffer is too
  /// small the error is InvalidInput and `*needed` (if given) receives the length.
  Result<size_t> access_token_into(detail::zstring account, char *buf, size_t buf_len,
                                   std::chrono::milliseconds min_ttl = std::chrono::milliseconds(0),
                                   size_t *needed = nullptr, uint64_t *generation = nullptr) {
    size_t len = 0;
    tv_status s = tv_vault_access_token_copy(v_, account.c_str(), ttl(min_ttl), buf, buf_len, &len, generation);
    if (s != TV_OK) {
      if (needed) *needed = len;
      return Error::last(s);
    }
    return len;
  }

  /// A valid token (refreshed when due), in library memory.
  Result<Token> access_token(detail::zstring account, std::chrono::milliseconds min_ttl = std::chrono::milliseconds(0)) {
    tv_buf b{nullptr, 0};
    uint64_t g = 0;
    tv_status s = tv_vault_access_token(v_, account.c_str(), ttl(min_ttl), &b, &g);
    if (s != TV_OK) return Error::last(s);
    return Token(b, g);
  }

  Result<Token> force_refresh(detail::zstring account) {
    tv_buf b{nullptr, 0};
    uint64_t g = 0;
    tv_status s = tv_vault_force_refresh(v_, account.c_str(), &b, &g);
    if (s != TV_OK) return Error::last(s);
    return Token(b, g);
  }

  Result<Token> report_rejected(detail::zstring account, detail::zstring rejected_token) {
    tv_buf b{nullptr, 0};
    uint64_t g = 0;
    tv_status s = tv_vault_report_rejected(v_, account.c_str(), rejected_token.c_str(), &b, &g);
    if (s != TV_OK) return Error::last(s);
    return Token(b, g);
  }

  Result<SessionInfo> session_info(detail::zstring account) {
    SessionInfo info = blank_info();
    tv_status s = tv_vault_session_info(v_, account.c_str(), &info);
    if (s != TV_OK) return Error::last(s);
    return info;
  }

  Result<std::string> session_info_json(detail::zstring account) {
    tv_buf b{nullptr, 0};
    tv_status s = tv_vault_session_info_json(v_, account.c_str(), &b);
    if (s != TV_OK) return Error::last(s);
    std::string out(b.data, b.len);
    tv_buf_free(&b);
    return out;
  }

  Result<std::vector<std::string>> list_accounts() {
    tv_account_list *list = nullptr;
    tv_status s = tv_vault_list_accounts(v_, &list);
    if (s != TV_OK) return Error::last(s);
    size_t n = 0;
    std::vector<std::string> out;
    if (tv_account_list_count(list, &n) == TV_OK) {
      out.reserve(n);
      for (size_t i = 0; i < n; i++) {
        const char *a = nullptr;
        if (tv_account_list_get(list, i, &a) == TV_OK) out.emplace_back(a);
      }
    }
    tv_account_list_free(list);
    return out;
  }

  /// Whether a session existed. With `revoke`, the refresh credential is also revoked at the
  /// profile's RFC 7009 endpoint, in the background (tv_vault_remove_and_revoke).
  Result<bool> remove(detail::zstring account, bool revoke = false) {
    uint8_t existed = 0;
    tv_status s = revoke ? tv_vault_remove_and_revoke(v_, account.c_str(), &existed)
                         : tv_vault_remove(v_, account.c_str(), &existed);
    if (s != TV_OK) return Error::last(s);
    return existed != 0;
  }

  /// The revocations still to be sent, as JSON (tv_vault_pending_revocations_json).
  Result<std::string> pending_revocations_json() {
    tv_buf b{nullptr, 0};
    tv_status s = tv_vault_pending_revocations_json(v_, &b);
    if (s != TV_OK) return Error::last(s);
    std::string out(b.data, b.len);
    tv_buf_free(&b);
    return out;
  }

  /// Send the queued revocations now (blocking); returns {revoked, still pending}.
  Result<std::pair<size_t, size_t>> send_revocations() {
    size_t revoked = 0, pending = 0;
    tv_status s = tv_vault_send_revocations(v_, &revoked, &pending);
    if (s != TV_OK) return Error::last(s);
    return std::make_pair(revoked, pending);
  }

  /// Move a session to `profile` and its endpoint (a session's refresh credential is only sent
  /// to the origin it was stored with; see tv_vault_move_session).
  Result<void> move_session(detail::zstring account, detail::zstring profile) {
    return detail::check(tv_vault_move_session(v_, account.c_str(), profile.c_str()));
  }

  /// Replace the key and the data key; the old key opens the vault until the new key's first
  /// open (see tv_vault_rekey_with_key for the host's sequence).
  Result<void> rekey_with_key(const uint8_t *key, size_t key_len) { return detail::check(tv_vault_rekey_with_key(v_, key, key_len)); }
  Result<void> rekey_with_passphrase(detail::zstring passphrase) {
    return detail::check(tv_vault_rekey_with_passphrase(v_, passphrase.c_str()));
  }

  /// Two-step refresh: start.
  Result<RefreshBegin> begin_refresh(detail::zstring account, bool force) {
    tv_refresh_step step = TV_REFRESH_FRESH;
    uint64_t attempt = 0;
    tv_http_request *req = nullptr;
    tv_status s = tv_vault_begin_refresh(v_, account.c_str(), force ? 1 : 0, &step, &attempt, &req);
    if (s != TV_OK) return Error::last(s);
    return RefreshBegin{step, attempt, HttpRequest::owning(req)};
  }

  /// Two-step refresh: the server's answer.
  Result<Token> finish_refresh(uint64_t attempt, uint16_t status, const std::vector<std::pair<std::string, std::string>> &headers,
                               std::string_view body) {
    std::vector<tv_http_header> hs;
    hs.reserve(headers.size());
    for (const auto &h : headers) hs.push_back(tv_http_header{h.first.c_str(), h.second.c_str()});
    tv_buf b{nullptr, 0};
    uint64_t g = 0;
    tv_status s = tv_vault_finish_refresh(v_, attempt, status, hs.empty() ? nullptr : hs.data(), hs.size(),
                                          reinterpret_cast<const uint8_t *>(body.data()), body.size(), &b, &g);
    if (s != TV_OK) return Error::last(s);
    return Token(b, g);
  }

  /// Two-step refresh: the request failed on the network.
  Result<Token> fail_refresh(uint64_t attempt, TransportResult why) {
    tv_buf b{nullptr, 0};
    uint64_t g = 0;
    tv_status s = tv_vault_fail_refresh(v_, attempt, static_cast<int32_t>(why), &b, &g);
    if (s != TV_OK) return Error::last(s);
    return Token(b, g);
  }

  /// Install the host's HTTP client: `f(const HttpRequest &, HttpResponseWriter &) ->
  /// TransportResult`, called on the thread that asked for a token (see
  /// tv_vault_set_transport for what it may call). The vault keeps a copy of `f`.
  template <class F>
  Result<void> set_transport(F &&f) {
    using Fn = typename std::decay<F>::type;
    Fn *copy = new (std::nothrow) Fn(std::forward<F>(f));
    if (!copy) return Error(Status::Internal, "out of memory");
    tv_status s = tv_vault_set_transport(v_, &transport_trampoline<Fn>, copy, &destroy<Fn>);
    if (s != TV_OK) {
      delete copy;
      return Error::last(s);
    }
    return Result<void>();
  }

  /// Go back to the built-in HTTPS transport.
  Result<void> use_builtin_transport() { return detail::check(tv_vault_set_transport(v_, nullptr, nullptr, nullptr)); }

  /// Receive events: `f(const Event &)` on the vault's event thread. The vault keeps a copy.
  template <class F>
  Result<void> set_event_callback(F &&f) {
    using Fn = typename std::decay<F>::type;
    Fn *copy = new (std::nothrow) Fn(std::forward<F>(f));
    if (!copy) return Error(Status::Internal, "out of memory");
    tv_status s = tv_vault_set_event_callback(v_, &event_trampoline<Fn>, copy, &destroy<Fn>);
    if (s != TV_OK) {
      delete copy;
      return Error::last(s);
    }
    return Result<void>();
  }

  Result<void> clear_event_callback() { return detail::check(tv_vault_set_event_callback(v_, nullptr, nullptr, nullptr)); }

 private:
  explicit Vault(tv_vault *v) noexcept : v_(v) {}

  static uint64_t ttl(std::chrono::milliseconds d) noexcept { return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0; }

  static SessionInfo blank_info() noexcept {
    SessionInfo info;
    std::memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    return info;
  }

  template <class Fn>
  static void destroy(void *p) noexcept {
    delete static_cast<Fn *>(p);
  }

  template <class Fn>
  static int32_t transport_trampoline(void *user_data, const tv_http_request *request, tv_http_response *response) noexcept {
    HttpRequest req = HttpRequest::borrowing(request);
    HttpResponseWriter writer(response);
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      return static_cast<int32_t>((*static_cast<Fn *>(user_data))(static_cast<const HttpRequest &>(req), writer));
    } catch (...) {
      return TV_TRANSPORT_OTHER;
    }
#else
    return static_cast<int32_t>((*static_cast<Fn *>(user_data))(static_cast<const HttpRequest &>(req), writer));
#endif
  }

  template <class Fn>
  static void event_trampoline(void *user_data, const tv_event *e) noexcept {
    Event ev{e->kind,
             e->account ? std::string_view(e->account) : std::string_view(),
             e->generation,
             e->access_remaining_ms,
             e->has_session_remaining != 0,
             e->session_remaining_ms,
             e->reason ? std::string_view(e->reason) : std::string_view()};
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      (*static_cast<Fn *>(user_data))(static_cast<const Event &>(ev));
    } catch (...) {
    }
#else
    (*static_cast<Fn *>(user_data))(static_cast<const Event &>(ev));
#endif
  }

  tv_vault *v_ = nullptr;
};

}  // namespace tv

#endif  // TOKENVAULT_HPP
