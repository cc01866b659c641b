// `mlamoe bench` end to end on the shared V2-Lite-shaped fixture: the JSON contract
// (key names read by tools), consistent statistics and clear errors on bad flags.
#include <cstdlib>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "test_paths.h"

using mlamoe::test::run_mlamoe;

namespace {

std::string fixture() { return mlamoe::test::shared_dir() + "/fixtures/v2lite/model.gguf"; }

nlohmann::json last_line_json(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return nlohmann::json::parse(s.substr(s.rfind('\n') + 1));
}

}  // namespace

TEST(CliBench, JsonLastLineHasTheContractKeys) {
  // 20 generated tokens: two segments of the roofline's bandwidth probes (every 16).
  auto r = run_mlamoe({"bench", "-m", fixture(), "-p", "8", "-n", "20", "-r", "3", "-t", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = last_line_json(r.out);
  for (const char* test : {"pp", "tg"}) {
    ASSERT_TRUE(j.contains(test)) << r.out;
    const double lo = j[test]["min"], mid = j[test]["median"], hi = j[test]["max"];
    EXPECT_GT(lo, 0.0);
    EXPECT_LE(lo, mid);
    EXPECT_LE(mid, hi);
  }
  EXPECT_GT(j["membw_gbps"].get<double>(), 0.0);
  EXPECT_GT(j["bytes_per_token"].get<uint64_t>(), 0u);
  EXPECT_NEAR(j["roofline_tg"].get<double>(), j["membw_gbps"].get<double>() * 1e9 / j["bytes_per_token"].get<double>(),
              1e-6 * j["roofline_tg"].get<double>());
  // tg against the bandwidth probed alongside it, per repetition: a fraction, ordered.
  const double f_lo = j["tg_roofline_fraction"]["min"], f_mid = j["tg_roofline_fraction"]["median"],
               f_hi = j["tg_roofline_fraction"]["max"];
  EXPECT_GT(f_lo, 0.0);
  EXPECT_LE(f_lo, f_mid);
  EXPECT_LE(f_mid, f_hi);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_TRUE(j["core_round_trip_ns"].is_number() || j["core_round_trip_ns"].is_null()) << j.dump();
  const std::string isa = j["isa"], level = j["isa_level"];
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "scalar") << isa;
  EXPECT_EQ(isa, level == "avxvnni" ? "avx2" : level);
  EXPECT_EQ(level, mlamoe::kernels::isa_name(mlamoe::kernels::active_isa()));
  EXPECT_EQ(j["model"], fixture());
  EXPECT_NE(r.out.find("% of roofline"), std::string::npos) << r.out;
}

TEST(CliBench, SkippedTestIsNull) {
  auto r = run_mlamoe({"bench", "-m", fixture(), "-p", "0", "-n", "2", "-r", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = last_line_json(r.out);
  EXPECT_TRUE(j["pp"].is_null());
  EXPECT_GT(j["tg"]["median"].get<double>(), 0.0);
  EXPECT_GT(j["tg_roofline_fraction"]["median"].get<double>(), 0.0);

  auto pp_only = run_mlamoe({"bench", "-m", fixture(), "-p", "4", "-n", "0", "-r", "1", "--json"});
  ASSERT_EQ(pp_only.exit_code, 0) << pp_only.err;
  auto k = last_line_json(pp_only.out);
  EXPECT_TRUE(k["tg"].is_null());
  EXPECT_TRUE(k["tg_roofline_fraction"].is_null());
  EXPECT_GT(k["membw_gbps"].get<double>(), 0.0);
}

// --phases: the decode steps' time by phase adds up to the decode time, and the weight
// bytes the products read per token are the bytes the roofline divides by (the model's
// bytes_per_token, counted from its shapes; it also counts the one embedding row and
// the legacy W_UK scales, which no product reads).
TEST(CliBench, PhasesCoverTheDecodeAndReadTheRooflinesBytes) {
  auto r = run_mlamoe({"bench", "-m", fixture(), "-p", "0", "-n", "12", "-r", "2", "-t", "2", "--phases", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = last_line_json(r.out);
  ASSERT_TRUE(j.contains("decode_phases")) << r.out;
  const auto& phases = j["decode_phases"]["phases"];
  double share = 0;
  std::set<std::string> names;
  for (const auto& p : phases) {
    names.insert(p["phase"].get<std::string>());
    EXPECT_GE(p["share"].get<double>(), 0.0) << p.dump();
    EXPECT_GE(p["ms_per_token"].get<double>(), 0.0) << p.dump();
    share += p["share"].get<double>();
  }
  for (const char* name : {"projections", "absorb query", "latent attention", "value up", "expert gate+up", "expert down",
                           "outside phases"})
    EXPECT_TRUE(names.count(name)) << name << " missing from " << phases.dump();
  EXPECT_NEAR(share, 1.0, 0.02) << phases.dump();
  const double read = j["decode_phases"]["weight_bytes_per_token"], roofline = j["bytes_per_token"];
  EXPECT_NEAR(read, roofline, 0.03 * roofline) << r.out;
  EXPECT_NE(r.out.find("decode by phase"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("weights read by the products"), std::string::npos) << r.out;
}

TEST(CliBench, MembwAlone) {
  auto r = run_mlamoe({"bench", "--membw", "--json", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = last_line_json(r.out);
  EXPECT_GT(j["membw_gbps"].get<double>(), 0.0);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_NE(r.out.find("membw:"), std::string::npos);
  EXPECT_TRUE(j["core_round_trip_ns"].is_null()) << "one thread has no partner";
  EXPECT_EQ(r.out.find("cores:"), std::string::npos) << r.out;
}

// Two threads pass a cache line back and forth: 70-350 ns on two free CPUs (the VMs of
// BENCHMARKS.md), up to a scheduler slice a trip when another test holds the other CPU
// or both share one; a number either way, under the 200 ms a run may wait.
TEST(CliBench, CoreRoundTripWithTwoThreads) {
  auto r = run_mlamoe({"bench", "--membw", "--json", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = last_line_json(r.out);
  ASSERT_TRUE(j["core_round_trip_ns"].is_number()) << r.out;
  EXPECT_GT(j["core_round_trip_ns"].get<double>(), 1.0);
  EXPECT_LT(j["core_round_trip_ns"].get<double>(), 2e8);
  EXPECT_NE(r.out.find("cores:"), std::string::npos) << r.out;
}

TEST(CliBench, BadFlagsFailWithOneLine) {
  auto r = run_mlamoe({"bench", "-m", fixture(), "-r", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-r"), std::string::npos) << r.err;
  r = run_mlamoe({"bench"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-m"), std::string::npos) << r.err;
  r = run_mlamoe({"bench", "-m", "/nonexistent/model.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
}

// The kernel settings read from the environment: a bad value is one line and exit 1
// (it once aborted before main), and a forced MLAMOE_PREFETCH is reported as such.
TEST(CliBench, KernelEnvironmentSettings) {
  ::setenv("MLAMOE_ISA", "sse9", 1);
  auto r = run_mlamoe({"bench", "--membw"});
  ::unsetenv("MLAMOE_ISA");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: MLAMOE_ISA=sse9: expected avx512, avxvnni, avx2 or scalar\n");

  // AVX-VNNI is an AVX2 level: "isa" keeps the family tools compare, "isa_level" names it.
  ::setenv("MLAMOE_ISA", "avxvnni", 1);
  r = run_mlamoe({"bench", "--membw", "--json"});
  ::unsetenv("MLAMOE_ISA");
  if (mlamoe::kernels::cpu_supports(mlamoe::kernels::Isa::AvxVnni)) {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = last_line_json(r.out);
    EXPECT_EQ(j["isa"], "avx2");
    EXPECT_EQ(j["isa_level"], "avxvnni");
  } else {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "error: MLAMOE_ISA=avxvnni: this CPU does not support it\n");
  }

  ::setenv("MLAMOE_PREFETCH", "yes", 1);
  r = run_mlamoe({"bench", "-m", fixture(), "-p", "0", "-n", "1", "-r", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: MLAMOE_PREFETCH=yes: expected 0 or 1\n");

  // Every SIMD ISA's one-token tiled kernels prefetch; under scalar the setting says so.
  const bool simd = mlamoe::kernels::cpu_supports(mlamoe::kernels::Isa::Avx2);
  for (const char* isa : {"scalar", "avx2", ""})
    for (const char* v : {"0", "1"}) {
      SCOPED_TRACE(std::string("MLAMOE_ISA=") + isa + " MLAMOE_PREFETCH=" + v);
      ::setenv("MLAMOE_PREFETCH", v, 1);
      if (*isa) ::setenv("MLAMOE_ISA", isa, 1);
      r = run_mlamoe({"bench", "-m", fixture(), "-p", "0", "-n", "1", "-r", "1", "--json"});
      ::unsetenv("MLAMOE_ISA");
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const bool can = simd && std::string(isa) != "scalar";
      EXPECT_EQ(last_line_json(r.out)["decode_prefetch"].get<bool>(), can && v[0] == '1') << r.out;
      const std::string said = can ? std::string(v[0] == '1' ? "on" : "off") + " (MLAMOE_PREFETCH)"
                                   : "off (only the SIMD tiled kernels prefetch)";
      EXPECT_NE(r.out.find("decode prefetch: " + said), std::string::npos) << r.out;
    }
  ::unsetenv("MLAMOE_PREFETCH");
}

// --tile-cache: the first load lays the weights out and writes the cache, the second maps
// it; a cache that cannot be written is a warning, not a failed run.
TEST(CliBench, TileCacheIsWrittenThenMapped) {
  const std::string dir = mlamoe::test::temp_dir(), model = dir + "/tile_cache_q4_0.gguf", cache = dir + "/q4_0.tiles";
  auto r = run_mlamoe({"gen-random", "--config", mlamoe::test::shared_dir() + "/fixtures/v2lite/config.json", "--out", model,
                       "--type", "q4_0", "--seed", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> bench = {"bench", "-m", model, "-p", "0", "-n", "2", "-r", "1", "--tile-cache"};
  auto with_cache = [&](const std::string& path) {
    std::vector<std::string> args = bench;
    args.push_back(path);
    return run_mlamoe(args);
  };
  r = with_cache(cache);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  if (r.out.find("load: ") != std::string::npos && r.out.find(" 0 B re-laid out") != std::string::npos)
    GTEST_SKIP() << "no tiled int8 kernels on this CPU";
  EXPECT_NE(r.out.find("re-laid out for the int8 kernels"), std::string::npos) << r.out;
  r = with_cache(cache);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(tiles mapped from the tile cache)"), std::string::npos) << r.out;
  std::vector<std::string> json_args = bench;
  json_args.insert(json_args.end(), {cache, "--json"});
  r = run_mlamoe(json_args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(last_line_json(r.out)["tiles_from_cache"].get<bool>()) << r.out;

  std::vector<std::string> both = bench;
  both.insert(both.end(), {cache, "--no-repack"});
  r = run_mlamoe(both);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: --tile-cache keeps the re-laid-out weights; it cannot go with --no-repack\n");

  r = with_cache(dir + "/no/such/dir/x.tiles");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: tile cache not written: " + dir + "/no/such/dir/x.tiles: cannot write"), std::string::npos) << r.err;
}
