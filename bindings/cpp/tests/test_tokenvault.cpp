// GoogleTest suite of the C++ wrapper (and through it, the C ABI) against tests/testkit's
// reference server: the whole cycle through a host transport (the host's own HTTP client,
// here plain POSIX sockets) and through the built-in transport, the two-step refresh, events,
// and the error paths. Built twice by CMake: against libtokenvault.a and libtokenvault.so.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/tvt_support.h"
#include "tokenvault.hpp"

namespace {

const uint8_t kKey[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};

struct Server {
  tvt_server s{};
  bool ok = false;
  explicit Server(const char *dialect) { ok = tvt_server_start(&s, dialect, nullptr) == 0; }
  ~Server() {
    if (ok) tvt_server_stop(&s);
  }
  std::string url(const char *path) const { return std::string(s.base_url) + path; }
  std::pair<std::string, std::string> login(const char *user) const {
    char *a = nullptr, *r = nullptr;
    if (tvt_server_login(&s, user, &a, &r) != 0) return {};
    std::pair<std::string, std::string> out{a, r};
    free(a);
    free(r);
    return out;
  }
  long stat(const char *name) const { return tvt_server_stat(&s, name); }
  int protected_status(const std::string &token) const { return tvt_server_protected(&s, token.c_str()); }
};

struct TempDir {
  char *dir = tvt_tempdir();
  ~TempDir() { tvt_rmdir(dir); }
  std::string file(const char *name) const { return std::string(dir) + "/" + name; }
};

// The host's HTTP client as a C++ callable over the wrapper's request/response types.
struct HostTransport {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);

  tv::TransportResult operator()(const tv::HttpRequest &req, tv::HttpResponseWriter &out) const {
    ++*calls;
    std::string method(req.method()), url(req.url());
    std::vector<std::string> storage;
    std::vector<tvt_header> hs;
    for (const auto &h : req.headers()) {
      storage.emplace_back(h.name);
      storage.emplace_back(h.value);
    }
    for (size_t i = 0; i < storage.size(); i += 2)
      hs.push_back(tvt_header{&storage[i][0], &storage[i + 1][0]});
    std::string_view body = req.body();
    tvt_response r;
    int rc = tvt_http(method.c_str(), url.c_str(), hs.data(), hs.size(), reinterpret_cast<const uint8_t *>(body.data()),
                      body.size(), static_cast<uint64_t>(req.timeout().count()), &r);
    for (auto &s : storage) std::fill(s.begin(), s.end(), '\0');
    if (rc != 0) return static_cast<tv::TransportResult>(rc);
    bool ok = out.set_status(static_cast<uint16_t>(r.status)).ok();
    for (size_t i = 0; ok && i < r.header_count; i++) ok = out.add_header(r.headers[i].name, r.headers[i].value).ok();
    if (ok) ok = out.append_body(r.body, r.body_len).ok();
    tvt_response_free(&r);
    return ok ? tv::TransportResult::Ok : tv::TransportResult::TooLarge;
  }
};

struct EventLog {
  std::mutex mu;
  std::condition_variable cv;
  int refreshed = 0, expired = 0, removed = 0;
  int reentrant_ok = 0;

  bool wait(int EventLog::*counter, int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return this->*counter >= n; });
  }
};

tv::Vault open_vault(const TempDir &dir) {
  auto r = tv::Vault::open_with_key(dir.file("vault.db"), kKey, sizeof kKey);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
  return r ? std::move(r).value() : tv::Vault();
}

}  // namespace

TEST(TokenVault, StatusNumbersAndNames) {
  EXPECT_EQ(static_cast<int32_t>(tv::Status::Ok), 0);
  EXPECT_EQ(static_cast<int32_t>(tv::Status::Closed), TV_CLOSED);
  EXPECT_STREQ(tv::status_name(tv::Status::WrongKey), "wrong_key");
  EXPECT_STREQ(tv::status_name(tv::Status::RefreshOutcomeUnknown), "refresh_outcome_unknown");
  EXPECT_GT(std::strlen(tv::version()), 0u);
}

TEST(TokenVault, ErrorPaths) {
  TempDir dir;
  // Raw C calls for what the wrapper cannot express: NULL.
  tv_vault *raw = nullptr;
  EXPECT_EQ(tv_vault_open_with_key(nullptr, kKey, 32, &raw), TV_INVALID_INPUT);
  EXPECT_EQ(tv_vault_access_token_copy(nullptr, "a", 0, nullptr, 0, nullptr, nullptr), TV_INVALID_INPUT);

  auto bad_len = tv::Vault::open_with_key(dir.file("v.db"), kKey, 16);
  ASSERT_FALSE(bad_len);
  EXPECT_EQ(bad_len.status(), tv::Status::InvalidInput);
  auto bad_utf8 = tv::Vault::open_with_key(std::string(dir.dir) + "/\xff.db", kKey, 32);
  ASSERT_FALSE(bad_utf8);
  EXPECT_NE(bad_utf8.error().message().find("UTF-8"), std::string::npos);

  {
    tv::Vault v = open_vault(dir);
    ASSERT_TRUE(v);
    EXPECT_EQ(v.access_token("nobody").status(), tv::Status::NotFound);
    EXPECT_EQ(v.access_token("\xc3\x28").status(), tv::Status::InvalidInput);
    EXPECT_EQ(v.load_profile_json("{}").status(), tv::Status::InvalidInput);
    // move_session: an unregistered profile is invalid input; an unknown account, not found.
    EXPECT_EQ(v.move_session("nobody", "game").status(), tv::Status::InvalidInput);
    ASSERT_TRUE(v.load_profile_json(
        R"({"preset":"oauth2","name":"game","url":"http://127.0.0.1:9/token","client_id":"c"})"));
    EXPECT_EQ(v.move_session("nobody", "game").status(), tv::Status::NotFound);
    ASSERT_TRUE(v.close());
    EXPECT_EQ(v.move_session("nobody", "game").status(), tv::Status::Closed);
    EXPECT_TRUE(v.close());
    EXPECT_EQ(v.access_token("a").status(), tv::Status::Closed);
    EXPECT_EQ(v.list_accounts().status(), tv::Status::Closed);
    EXPECT_EQ(v.set_transport(HostTransport{}).status(), tv::Status::Closed);
  }
  uint8_t other[32] = {0};
  auto wrong = tv::Vault::open_with_key(dir.file("vault.db"), other, sizeof other);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.status(), tv::Status::WrongKey);

  EXPECT_EQ(tv_test_panic(), TV_INTERNAL);
  tv::Error e = tv::Error::last(TV_INTERNAL);
  EXPECT_NE(e.message().find("panic"), std::string::npos);
}

TEST(TokenVault, WholeCycleThroughTheHostTransport) {
  Server srv("000");
  ASSERT_TRUE(srv.ok);
  TempDir dir;
  tv::Vault v = open_vault(dir);
  ASSERT_TRUE(v);
  std::string profile = R"({"preset":"entity-token-envelope","name":"game","api_key":"test-api-key","url":")" +
                        srv.url("/v2/client/auth/refresh-token") + "\"}";
  ASSERT_TRUE(v.load_profile_json(profile));
  HostTransport transport;
  ASSERT_TRUE(v.set_transport(transport));

  auto events = std::make_shared<EventLog>();
  const tv_vault *native = v.native();
  ASSERT_TRUE(v.set_event_callback([events, native](const tv::Event &ev) {
    int ok = 0;
    if (ev.kind == TV_EVENT_TOKEN_REFRESHED) {
      // Re-entering the vault from its event thread must not deadlock.
      char buf[4096];
      size_t len = 0;
      std::string account(ev.account);
      ok = tv_vault_access_token_copy(native, account.c_str(), 0, buf, sizeof buf, &len, nullptr) == TV_OK;
    }
    std::lock_guard<std::mutex> lock(events->mu);
    if (ev.kind == TV_EVENT_TOKEN_REFRESHED) events->refreshed++;
    if (ev.kind == TV_EVENT_SESSION_EXPIRED) events->expired++;
    if (ev.kind == TV_EVENT_SESSION_REMOVED) events->removed++;
    events->reentrant_ok += ok;
    events->cv.notify_all();
  }));

  auto [access, entity] = srv.login("ada");
  ASSERT_FALSE(access.empty());
  tv::Session s;
  s.account = "ada";
  s.profile = "game";
  s.access_token = access;
  s.refresh_credential = entity;
  s.hints_json = R"({"display_name":"Ada"})";
  auto stored = v.store(s);
  ASSERT_TRUE(stored) << stored.error().message();
  EXPECT_EQ(stored->state, TV_SESSION_FRESH);

  char buf[4096];
  auto n = v.access_token_into("ada", buf, sizeof buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string(buf, *n), access);
  size_t needed = 0;
  char tiny[4];
  auto small = v.access_token_into("ada", tiny, sizeof tiny, std::chrono::milliseconds(0), &needed);
  EXPECT_EQ(small.status(), tv::Status::InvalidInput);
  EXPECT_EQ(needed, access.size());

  auto refreshed = v.force_refresh("ada");
  ASSERT_TRUE(refreshed) << refreshed.error().message();
  EXPECT_NE(refreshed->view(), access);
  EXPECT_GT(refreshed->generation(), stored->generation);
  EXPECT_EQ(*transport.calls, 1);
  EXPECT_EQ(srv.stat("refresh_successes"), 1);
  EXPECT_EQ(srv.protected_status(std::string(refreshed->view())), 200);
  EXPECT_TRUE(events->wait(&EventLog::refreshed, 1));

  // A 401 with the old token: the current one comes back without a refresh.
  auto again = v.report_rejected("ada", access);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->view(), refreshed->view());
  EXPECT_EQ(*transport.calls, 1);

  // A min TTL longer than what is left forces a refresh (capped at half the lifetime).
  auto ttl = v.access_token("ada", std::chrono::hours(24));
  ASSERT_TRUE(ttl);

  auto info = v.session_info("ada");
  ASSERT_TRUE(info);
  EXPECT_GE(info->refresh_count, 1u);
  auto json = v.session_info_json("ada");
  ASSERT_TRUE(json);
  EXPECT_NE(json->find("\"display_name\":\"Ada\""), std::string::npos);

  auto [access2, entity2] = srv.login("bob");
  tv::Session s2 = s;
  s2.account = "bob";
  s2.access_token = access2;
  s2.refresh_credential = entity2;
  ASSERT_TRUE(v.store(s2));
  auto accounts = v.list_accounts();
  ASSERT_TRUE(accounts);
  EXPECT_EQ(*accounts, (std::vector<std::string>{"ada", "bob"}));
  auto removed = v.remove("bob");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_TRUE(events->wait(&EventLog::removed, 1));

  // Server-side logout: re-authentication required, and an event says so.
  ASSERT_EQ(tvt_server_post(&srv.s, "/test/revoke", ("{\"token\":\"" + entity + "\"}").c_str()), 200);
  auto dead = v.force_refresh("ada");
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.status(), tv::Status::ReauthenticationRequired);
  EXPECT_EQ(dead.error().message().find(entity), std::string::npos);
  EXPECT_TRUE(events->wait(&EventLog::expired, 1));
  EXPECT_GE(events->reentrant_ok, 1);
}

TEST(TokenVault, WholeCycleThroughTheBuiltinTransport) {
  Server srv("002");
  ASSERT_TRUE(srv.ok);
  TempDir dir;
  tv::Vault v = open_vault(dir);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v.load_profile_json(R"({"preset":"rotating-bearer-versioned","name":"game","url":")" +
                                  srv.url("/User/RefreshToken") + "\"}"));
  ASSERT_TRUE(v.set_transport(HostTransport{}));
  ASSERT_TRUE(v.use_builtin_transport());
  auto [access, refresh] = srv.login("ada");
  tv::Session s;
  s.account = "ada";
  s.profile = "game";
  s.access_token = access;
  s.refresh_credential = refresh;
  ASSERT_TRUE(v.store(s));
  auto t1 = v.force_refresh("ada");
  ASSERT_TRUE(t1) << t1.error().message();
  // Seed 002 revokes the previous access token on refresh.
  EXPECT_EQ(srv.protected_status(access), 401);
  EXPECT_EQ(srv.protected_status(std::string(t1->view())), 200);
  auto t2 = v.report_rejected("ada", t1->c_str());
  ASSERT_TRUE(t2);
  EXPECT_NE(t2->view(), t1->view());
  EXPECT_EQ(srv.stat("refresh_successes"), 2);
  tv::Token moved = std::move(t2).value();
  EXPECT_EQ(srv.protected_status(std::string(moved.view())), 200);
}

TEST(TokenVault, TwoStepRefresh) {
  Server srv("001");
  ASSERT_TRUE(srv.ok);
  TempDir dir;
  tv::Vault v = open_vault(dir);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v.load_profile_json(R"({"preset":"rotating-success-envelope","name":"game","url":")" +
                                  srv.url("/v2/Auth/RefreshToken") + "\"}"));
  auto [access, refresh] = srv.login("ada");
  tv::Session s;
  s.account = "ada";
  s.profile = "game";
  s.access_token = access;
  s.refresh_credential = refresh;
  ASSERT_TRUE(v.store(s));

  auto fresh = v.begin_refresh("ada", false);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->step, TV_REFRESH_FRESH);
  EXPECT_FALSE(fresh->request);

  auto begin = v.begin_refresh("ada", true);
  ASSERT_TRUE(begin);
  ASSERT_EQ(begin->step, TV_REFRESH_SEND);
  ASSERT_TRUE(begin->request);
  EXPECT_EQ(begin->request.method(), "POST");
  EXPECT_NE(begin->request.body().find("refreshToken"), std::string_view::npos);
  // While it is in flight, another begin joins it.
  auto joined = v.begin_refresh("ada", true);
  ASSERT_TRUE(joined);
  EXPECT_EQ(joined->step, TV_REFRESH_IN_FLIGHT);

  tvt_response r;
  ASSERT_EQ(tvt_perform(begin->request.native(), &r), 0);
  std::vector<std::pair<std::string, std::string>> headers;
  for (size_t i = 0; i < r.header_count; i++) headers.emplace_back(r.headers[i].name, r.headers[i].value);
  auto token = v.finish_refresh(begin->attempt, static_cast<uint16_t>(r.status), headers,
                                std::string_view(reinterpret_cast<const char *>(r.body), r.body_len));
  tvt_response_free(&r);
  ASSERT_TRUE(token) << token.error().message();
  EXPECT_NE(token->view(), access);
  EXPECT_EQ(srv.protected_status(std::string(token->view())), 200);

  auto second = v.begin_refresh("ada", true);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->step, TV_REFRESH_SEND);
  auto failed = v.fail_refresh(second->attempt, tv::TransportResult::Connect);
  EXPECT_EQ(failed.status(), tv::Status::Transient);
  // The session lives on.
  auto still = v.access_token("ada");
  ASSERT_TRUE(still);
  EXPECT_EQ(still->view(), token->view());
}

TEST(TokenVault, HandlesAreMoveOnly) {
  static_assert(!std::is_copy_constructible<tv::Vault>::value, "Vault is move-only");
  static_assert(!std::is_copy_constructible<tv::Token>::value, "Token is move-only");
  static_assert(!std::is_copy_constructible<tv::HttpRequest>::value, "HttpRequest is move-only");
  static_assert(std::is_nothrow_move_constructible<tv::Vault>::value, "Vault moves without throwing");
  TempDir dir;
  tv::Vault a = open_vault(dir);
  ASSERT_TRUE(a);
  tv::Vault b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT: testing the moved-from state
  EXPECT_TRUE(b);
  tv::Vault c;
  c = std::move(b);
  EXPECT_TRUE(c.list_accounts());
}

// The calls of this round through the wrapper: options, metrics, store_response, revocation.
TEST(TokenVault, OptionsMetricsStoreResponseAndRevocation) {
  Server srv("001");
  ASSERT_TRUE(srv.ok);
  TempDir dir;
  tv_open_options o;
  ASSERT_EQ(tv_open_options_init(&o), TV_OK);
  o.refresh_point = 2.0;
  auto bad = tv::Vault::open_with_options(dir.file("v.db").c_str(), kKey, sizeof kKey, nullptr, o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status(), tv::Status::InvalidInput);
  o.refresh_point = 0.6;
  auto opened = tv::Vault::open_with_options(dir.file("v.db").c_str(), kKey, sizeof kKey, nullptr, o);
  ASSERT_TRUE(opened);
  tv::Vault v = std::move(opened).value();
  std::string profile = "{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"" +
                        srv.url("/v2/Auth/RefreshToken") + "\",\"revocation_url\":\"/oauth/revoke\"}";
  ASSERT_TRUE(v.load_profile_json(profile.c_str()));

  auto [access, refresh] = srv.login("ada");
  std::string body = "{\"success\":true,\"data\":{\"accessToken\":\"" + access + "\",\"refreshToken\":\"" + refresh + "\"}}";
  auto info = v.store_response("ada", "game", body);
  ASSERT_TRUE(info);
  EXPECT_EQ(info.value().has_refresh_credential, 1);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(v.access_token("ada"));
  auto m = v.metrics();
  ASSERT_TRUE(m);
  EXPECT_EQ(m.value().cached_hits, 5u);

  auto removed = v.remove("ada", true);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(removed.value());
  bool empty = false;
  for (int i = 0; i < 500 && !empty; i++) {
    auto q = v.pending_revocations_json();
    ASSERT_TRUE(q);
    empty = q.value().find("\"pending\":[]") != std::string::npos;
    if (!empty) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(empty);
  EXPECT_EQ(srv.stat("rfc7009_revocations"), 1);
  auto sent = v.send_revocations();
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent.value().second, 0u);
}
