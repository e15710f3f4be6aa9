#include "engine/metrics.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <string>
#include <thread>
#include <vector>

using namespace xr;
using namespace xr::metrics;

TEST_CASE("metrics: counters render with HELP, TYPE and labels in label order") {
  Registry r;
  auto logins = r.AddCounter("xpra_relay_logins_total", "Logins finished", {"result", "reason"});
  REQUIRE(logins.ok());
  (*(*logins)->With({"ok", ""}))->Inc();
  (*(*logins)->With({"failed", "wrong password"}))->Inc(3);
  (*(*logins)->With({"ok", ""}))->Inc();
  CHECK(r.Render() ==
        "# HELP xpra_relay_logins_total Logins finished\n"
        "# TYPE xpra_relay_logins_total counter\n"
        "xpra_relay_logins_total{result=\"failed\",reason=\"wrong password\"} 3\n"
        "xpra_relay_logins_total{result=\"ok\",reason=\"\"} 2\n");
}

TEST_CASE("metrics: gauges set and add, without labels no braces") {
  Registry r;
  auto g = r.AddGauge("xpra_relay_backoff_addresses", "In back-off");
  REQUIRE(g.ok());
  Gauge* child = (*g)->Get();
  child->Set(10);
  child->Add(-3);
  CHECK(r.Render() ==
        "# HELP xpra_relay_backoff_addresses In back-off\n"
        "# TYPE xpra_relay_backoff_addresses gauge\n"
        "xpra_relay_backoff_addresses 7\n");
  CHECK((*g)->Get() == child);  // the same child each time
}

TEST_CASE("metrics: label values and help text are escaped") {
  Registry r;
  auto c = r.AddCounter("x_total", "line one\nback\\slash \"quoted\"", {"v"});
  REQUIRE(c.ok());
  (*(*c)->With({"a\"b\\c\nd"}))->Inc();
  CHECK(r.Render() ==
        "# HELP x_total line one\\nback\\\\slash \"quoted\"\n"
        "# TYPE x_total counter\n"
        "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST_CASE("metrics: histogram buckets are cumulative, end with +Inf, then sum and count") {
  Registry r;
  auto h = r.AddHistogram("lat_seconds", "Latency", {"transport"}, {0.25, 0.5, 1});
  REQUIRE(h.ok());
  Histogram* tcp = *(*h)->With({"tcp"});
  for (double v : {0.125, 0.25, 0.375, 2.0}) tcp->Observe(v);  // 0.25 is in le="0.25" (upper bound inclusive)
  CHECK(r.Render() ==
        "# HELP lat_seconds Latency\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{transport=\"tcp\",le=\"0.25\"} 2\n"
        "lat_seconds_bucket{transport=\"tcp\",le=\"0.5\"} 3\n"
        "lat_seconds_bucket{transport=\"tcp\",le=\"1\"} 3\n"
        "lat_seconds_bucket{transport=\"tcp\",le=\"+Inf\"} 4\n"
        "lat_seconds_sum{transport=\"tcp\"} 2.75\n"
        "lat_seconds_count{transport=\"tcp\"} 4\n");
}

TEST_CASE("metrics: a histogram without labels; NaN observations are dropped") {
  Registry r;
  auto h = r.AddHistogram("hs_seconds", "Handshake", {}, {1});
  REQUIRE(h.ok());
  (*h)->Get()->Observe(0.5);
  (*h)->Get()->Observe(std::nan(""));
  std::string out = r.Render();
  CHECK(out.find("hs_seconds_bucket{le=\"1\"} 1\n") != std::string::npos);
  CHECK(out.find("hs_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
  CHECK(out.find("hs_seconds_count 1\n") != std::string::npos);
  CHECK(out.find("hs_seconds_sum 0.5\n") != std::string::npos);
}

TEST_CASE("metrics: families render in registration order") {
  Registry r;
  REQUIRE(r.AddGauge("b_gauge", "b").ok());
  REQUIRE(r.AddCounter("a_total", "a").ok());
  std::string out = r.Render();
  CHECK(out.find("b_gauge") < out.find("a_total"));
  CHECK(out.find("# TYPE a_total counter\n") != std::string::npos);  // no children yet: HELP and TYPE only
}

TEST_CASE("metrics: updates from many threads are all counted") {
  Registry r;
  auto c = r.AddCounter("n_total", "n");
  auto h = r.AddHistogram("h_seconds", "h", {}, {1});
  REQUIRE(c.ok());
  REQUIRE(h.ok());
  Counter* counter = (*c)->Get();
  Histogram* hist = (*h)->Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter->Inc();
        hist->Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(counter->Value() == 80000);
  CHECK(hist->Take().count == 80000);
  CHECK(hist->Take().sum == 40000.0);
  CHECK(r.Render().find("n_total 80000\n") != std::string::npos);
}

TEST_CASE("metrics: invalid names, labels, bounds and label counts are refused") {
  Registry r;
  CHECK(!r.AddCounter("1abc", "x").ok());
  CHECK(!r.AddCounter("a-b", "x").ok());
  CHECK(!r.AddCounter("ok_total", "x", {"__reserved"}).ok());
  CHECK(!r.AddCounter("ok_total", "x", {"bad:label"}).ok());
  CHECK(!r.AddCounter("ok_total", "x", {"a", "a"}).ok());
  CHECK(!r.AddHistogram("h", "x", {"le"}, {1}).ok());
  CHECK(!r.AddHistogram("h", "x", {}, {}).ok());
  CHECK(!r.AddHistogram("h", "x", {}, {2, 1}).ok());
  CHECK(!r.AddHistogram("h", "x", {}, {1, std::numeric_limits<double>::infinity()}).ok());
  REQUIRE(r.AddCounter("ns:ok_total", "x", {"a"}).ok());
  CHECK(r.AddGauge("ns:ok_total", "again").error().message.find("twice") != std::string::npos);
  auto f = r.AddCounter("two_total", "x", {"a", "b"});
  REQUIRE(f.ok());
  CHECK(!(*f)->With({"only-one"}).ok());
}

TEST_CASE("metrics: value formatting") {
  CHECK(FormatValue(1) == "1");
  CHECK(FormatValue(0.005) == "0.005");
  CHECK(FormatValue(2.5) == "2.5");
  CHECK(FormatValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(FormatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(FormatValue(std::nan("")) == "NaN");
}

TEST_CASE("metrics: the relay's families register and render") {
  Registry r;
  auto m = RelayMetrics::Register(r);
  REQUIRE(m.ok());
  (*m->connections->With({"relaying", "tcp"}))->Set(2);
  (*m->login_seconds->With({"tcp"}))->Observe(0.02);
  m->server_handshake_seconds->Get()->Observe(0.003);
  (*m->backend->With({"io_uring"}))->Set(1);
  std::string out = r.Render();
  CHECK(out.find("xpra_relay_connections{state=\"relaying\",transport=\"tcp\"} 2\n") != std::string::npos);
  CHECK(out.find("xpra_relay_login_seconds_bucket{transport=\"tcp\",le=\"0.025\"} 1\n") != std::string::npos);
  CHECK(out.find("xpra_relay_login_seconds_bucket{transport=\"tcp\",le=\"0.01\"} 0\n") != std::string::npos);
  CHECK(out.find("xpra_relay_server_handshake_seconds_count 1\n") != std::string::npos);
  CHECK(out.find("xpra_relay_backend{backend=\"io_uring\"} 1\n") != std::string::npos);
  CHECK(out.find("# TYPE xpra_relay_logins_total counter\n") != std::string::npos);
  CHECK(!RelayMetrics::Register(r).ok());  // once per registry
}
