// The hardware catalog: HBM figures computed from the generation's parameters, every
// accelerator's datasheet bandwidth and capacity consistent with its stacks, systems
// consistent with their devices, and bad catalog data rejected with a clear message.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "planner/hardware.h"
#include "test_paths.h"

using namespace mlamoe;
using namespace mlamoe::planner;

namespace {

const Catalog& catalog() {
  static Catalog c = Catalog::load(test::source_dir() + "/data/hardware");
  return c;
}

TEST(Hbm, Hbm3StackAt6p4IsComputedAs819p2) {
  const HbmStack& h = catalog().hbm_generations().at("HBM3");
  EXPECT_EQ(h.bus_width_bits, 1024);
  EXPECT_DOUBLE_EQ(h.pin_rate_gbps, 6.4);
  EXPECT_DOUBLE_EQ(h.bandwidth_gbps(), 819.2);  // 1024 × 6.4 / 8
  EXPECT_DOUBLE_EQ(h.capacity_gb(), 24.0);      // 16 Gb × 12-Hi / 8
}

TEST(Hbm, GenerationsFollowTheFormula) {
  const auto& g = catalog().hbm_generations();
  EXPECT_DOUBLE_EQ(g.at("HBM1").bandwidth_gbps(), 128.0);
  EXPECT_DOUBLE_EQ(g.at("HBM1").capacity_gb(), 1.0);
  EXPECT_DOUBLE_EQ(g.at("HBM2E").bandwidth_gbps(), 460.8);
  EXPECT_DOUBLE_EQ(g.at("HBM2E").capacity_gb(), 16.0);
  EXPECT_NEAR(g.at("HBM3E").bandwidth_gbps(), 1177.6, 1e-9);
  EXPECT_DOUBLE_EQ(g.at("HBM4").bandwidth_gbps(), 2048.0);  // twice the bus: 2048 bits
  for (const char* gen : {"HBM1", "HBM2", "HBM2E", "HBM3", "HBM3E", "HBM4"}) EXPECT_TRUE(g.count(gen)) << gen;
}

TEST(Hbm, H200SixHbm3eStacksAt6p25Give4p8TBs) {
  const Accelerator& h200 = catalog().accelerators().at("h200");
  ASSERT_TRUE(h200.hbm);
  EXPECT_EQ(h200.hbm_stacks, 6);
  EXPECT_DOUBLE_EQ(h200.hbm->pin_rate_gbps, 6.25);
  EXPECT_DOUBLE_EQ(*h200.hbm_bandwidth_gbps(), 4800.0);  // 6 × 1024 × 6.25 / 8
  EXPECT_DOUBLE_EQ(*h200.hbm_capacity_gb(), 144.0);      // 6 × 24 GB raw; 141 usable
}

TEST(Catalog, HasEveryRequiredEntry) {
  for (const char* id : {"a100", "h100-sxm", "h800", "h20", "h200", "b200", "b300", "ascend-910b", "ascend-910c", "tpu-v5p",
                         "trainium2", "mi300x"})
    EXPECT_TRUE(catalog().accelerators().count(id)) << id;
  for (const char* id : {"hgx-h800", "gb200-nvl72", "cloudmatrix-384"}) EXPECT_TRUE(catalog().systems().count(id)) << id;
  auto ids = catalog().ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), "local"), ids.end());
}

TEST(Catalog, DatasheetMemoryAgreesWithTheStacks) {
  for (auto& [id, a] : catalog().accelerators()) {
    SCOPED_TRACE(id);
    EXPECT_FALSE(a.sources.empty());
    ASSERT_TRUE(a.hbm_bandwidth_gbps()) << "every accelerator here uses HBM";
    EXPECT_NEAR(*a.hbm_bandwidth_gbps() / a.memory_bandwidth_gbps, 1.0, 0.01);
    // Usable capacity is at most the raw stacks, and not far below them.
    EXPECT_GE(*a.hbm_capacity_gb() + 1e-9, a.memory_gb);
    EXPECT_LE(*a.hbm_capacity_gb(), a.memory_gb * 1.1);
  }
}

TEST(Catalog, PeaksAreDenseAndKeptPerPrecision) {
  const Accelerator& h100 = catalog().accelerators().at("h100-sxm");
  EXPECT_NEAR(h100.peak_tflops("bf16"), 989.4, 0.1);  // 1,979 is the sparse figure
  EXPECT_NEAR(h100.peak_tflops("fp8"), 2 * h100.peak_tflops("bf16"), 0.5);
  EXPECT_NEAR(h100.peak_tflops("fp4"), h100.peak_tflops("fp8"), 1e-9);  // no FP4 on Hopper: next wider
  const Accelerator& a100 = catalog().accelerators().at("a100");
  EXPECT_DOUBLE_EQ(a100.peak_tflops("fp8"), 312);  // no FP8 on Ampere: BF16, never INT8
  EXPECT_EQ(a100.peak_precision("fp8"), "bf16");
}

TEST(Catalog, SystemsMatchTheirDevices) {
  const auto& acc = catalog().accelerators();
  for (auto& [id, s] : catalog().systems()) {
    SCOPED_TRACE(id);
    const Accelerator& a = acc.at(s.accelerator);
    if (s.stated.count("hbm_tb")) {
      EXPECT_NEAR(s.devices * a.memory_gb / 1000 / s.stated.at("hbm_tb"), 1.0, 0.03);
    }
    if (s.stated.count("hbm_bandwidth_tbps")) {
      EXPECT_NEAR(s.devices * a.memory_bandwidth_gbps / 1000 / s.stated.at("hbm_bandwidth_tbps"), 1.0, 0.01);
    }
    if (s.stated.count("bf16_dense_pflops")) {
      EXPECT_NEAR(s.devices * a.peak_tflops("bf16") / 1000 / s.stated.at("bf16_dense_pflops"), 1.0, 0.05);
    }
  }
  // NVL72: 72 × 8 TB/s = 576 TB/s (the report's "5.76 TB/s" is off by 100).
  EXPECT_DOUBLE_EQ(72 * acc.at("gb200").memory_bandwidth_gbps / 1000, 576.0);
}

TEST(Catalog, UnknownHardwareListsTheKnownOnes) {
  try {
    catalog().resolve("h900");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("unknown hardware 'h900'"), std::string::npos) << m;
    EXPECT_NE(m.find("h800"), std::string::npos) << m;
    EXPECT_NE(m.find("cloudmatrix-384"), std::string::npos) << m;
  }
}

TEST(Catalog, SystemResolvesToItsDevicesAndDomain) {
  HardwareChoice c = catalog().resolve("cloudmatrix-384");
  EXPECT_EQ(c.device.id, "ascend-910c");
  EXPECT_EQ(c.default_devices(), 384);
  EXPECT_EQ(c.scale_up_domain(), 384);
  ASSERT_TRUE(c.watts_per_device());
  EXPECT_NEAR(*c.watts_per_device(), 559000.0 / 384, 1e-6);  // wall power shared out, not chip TDP
}

std::string write_catalog(const std::string& name, const std::string& json) {
  std::string dir = test::temp_dir() + "/" + name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/x.json") << json;
  return dir;
}

TEST(Catalog, RejectsSparsePeaksAndMissingSources) {
  const std::string base = R"({"id":"x","kind":"accelerator","name":"X","memory_gb":1,"memory_bandwidth_gbps":1,
    "scale_up":{"gbps_per_direction":1},)";
  EXPECT_THROW(Catalog::load(write_catalog("nosrc", base + R"("peak_dense_tflops":{"bf16":1}})")), Error);
  try {
    Catalog::load(write_catalog("sparse", base + R"("peak_dense_tflops":{"bf16_sparse":2,"bf16":1},"sources":["s"]})"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only dense"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Catalog::load(write_catalog("ok", base + R"("peak_dense_tflops":{"bf16":1},"sources":["s"]})")));
}

}  // namespace
