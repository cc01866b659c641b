#include "planner/hardware.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "kernels/membw.h"
#include "planner/compute_probe.h"

namespace mlamoe::planner {

using nlohmann::json;

std::string Accelerator::peak_precision(const std::string& precision) const {
  static const std::vector<std::string> order = {"fp4", "fp8", "int8", "bf16", "fp16", "fp32"};
  auto it = std::find(order.begin(), order.end(), precision);
  if (it == order.end()) it = std::find(order.begin(), order.end(), "bf16");
  for (; it != order.end(); ++it) {
    if (*it == "int8" && precision != "int8") continue;  // never stand in for a float format
    if (auto p = peak_dense_tflops.find(*it); p != peak_dense_tflops.end() && p->second > 0) return *it;
  }
  return "";
}

double Accelerator::peak_tflops(const std::string& precision) const {
  std::string used = peak_precision(precision);
  return used.empty() ? 0 : peak_dense_tflops.at(used);
}

std::optional<double> Accelerator::hbm_bandwidth_gbps() const {
  if (!hbm || hbm_stacks <= 0) return std::nullopt;
  return hbm_stacks * hbm->bandwidth_gbps();
}

std::optional<double> Accelerator::hbm_capacity_gb() const {
  if (!hbm || hbm_stacks <= 0) return std::nullopt;
  return hbm_stacks * hbm->capacity_gb();
}

std::optional<double> HardwareChoice::watts_per_device() const {
  if (system && system->system_power_kw) return *system->system_power_kw * 1000.0 / system->devices;
  return device.tdp_w;
}

namespace {

struct Reader {
  const json& j;
  std::string where;
  const json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  std::string str(const char* key, bool required = false) const {
    const json* v = find(key);
    if (!v) {
      if (required) fail(where, ": missing field ", key);
      return "";
    }
    if (!v->is_string()) fail(where, ": field ", key, " must be a string");
    return v->get<std::string>();
  }
  std::optional<double> num(const char* key, bool required = false) const {
    const json* v = find(key);
    if (!v) {
      if (required) fail(where, ": missing field ", key);
      return std::nullopt;
    }
    if (!v->is_number()) fail(where, ": field ", key, " must be a number");
    double x = v->get<double>();
    if (!(x >= 0)) fail(where, ": field ", key, " must not be negative");
    return x;
  }
  std::vector<std::string> strings(const char* key) const {
    std::vector<std::string> out;
    if (const json* v = find(key)) {
      if (!v->is_array()) fail(where, ": field ", key, " must be a list of strings");
      for (auto& s : *v) {
        if (!s.is_string()) fail(where, ": field ", key, " must be a list of strings");
        out.push_back(s.get<std::string>());
      }
    }
    return out;
  }
  Reader sub(const char* key, bool required) const {
    static const json empty = json::object();
    const json* v = find(key);
    if (!v) {
      if (required) fail(where, ": missing field ", key);
      return {empty, where};
    }
    if (!v->is_object()) fail(where, ": field ", key, " must be an object");
    return {*v, where + ": " + key};
  }
};

HbmStack read_hbm(const Reader& r) {
  HbmStack h;
  h.generation = r.str("name", true);
  h.bus_width_bits = static_cast<int64_t>(r.num("bus_width_bits").value_or(1024));
  h.pin_rate_gbps = *r.num("pin_rate_gbps", true);
  h.die_gbit = *r.num("die_gbit", true);
  h.stack_height = static_cast<int64_t>(*r.num("stack_height", true));
  if (h.bus_width_bits <= 0 || h.pin_rate_gbps <= 0 || h.die_gbit <= 0 || h.stack_height <= 0)
    fail(r.where, ": HBM bus width, pin rate, die density and stack height must be positive");
  return h;
}

void read_links(const Reader& r, Accelerator& a) {
  Reader up = r.sub("scale_up", true), out = r.sub("scale_out", false);
  a.scale_up = {up.str("link"), up.num("gbps_per_direction", true).value()};
  a.scale_up_domain = static_cast<int64_t>(up.num("domain").value_or(1));
  if (a.scale_up_domain < 1) fail(up.where, ": domain must be at least 1");
  a.scale_out = {out.str("link"), out.num("gbps_per_direction").value_or(0)};
}

Accelerator read_accelerator(const Reader& r) {
  Accelerator a;
  a.id = r.str("id", true);
  a.kind = r.str("kind", true);
  a.name = r.str("name", true);
  a.vendor = r.str("vendor");
  a.sources = r.strings("sources");
  a.notes = r.str("notes");
  if (a.sources.empty()) fail(r.where, ": every entry must name its sources");
  read_links(r, a);
  if (a.kind == "local") return a;
  Reader peaks = r.sub("peak_dense_tflops", true);
  for (auto& [k, v] : peaks.j.items()) {
    if (!v.is_number() || v.get<double>() <= 0) fail(peaks.where, ": ", k, " must be a positive number");
    if (k.find("sparse") != std::string::npos) fail(peaks.where, ": ", k, ": only dense peaks belong here");
    a.peak_dense_tflops[k] = v.get<double>();
  }
  if (a.peak_tflops("bf16") <= 0) fail(peaks.where, ": needs at least one of fp32/fp16/bf16");
  a.memory_gb = *r.num("memory_gb", true);
  a.memory_bandwidth_gbps = *r.num("memory_bandwidth_gbps", true);
  if (a.memory_gb <= 0 || a.memory_bandwidth_gbps <= 0) fail(r.where, ": memory_gb and memory_bandwidth_gbps must be positive");
  if (r.find("hbm")) {
    Reader h = r.sub("hbm", true);
    HbmStack s;
    s.generation = h.str("generation", true);
    s.bus_width_bits = 1024;
    s.pin_rate_gbps = *h.num("pin_rate_gbps", true);
    s.die_gbit = *h.num("die_gbit", true);
    s.stack_height = static_cast<int64_t>(*h.num("stack_height", true));
    a.hbm = s;
    a.hbm_stacks = static_cast<int64_t>(*h.num("stacks", true));
  }
  a.tdp_w = r.num("tdp_w");
  a.usd_per_hour = r.num("usd_per_hour");
  return a;
}

System read_system(const Reader& r) {
  System s;
  s.id = r.str("id", true);
  s.name = r.str("name", true);
  s.accelerator = r.str("accelerator", true);
  s.devices = static_cast<int64_t>(*r.num("devices", true));
  s.scale_up_domain = static_cast<int64_t>(*r.num("scale_up_domain", true));
  if (s.devices < 1 || s.scale_up_domain < 1) fail(r.where, ": devices and scale_up_domain must be at least 1");
  s.system_power_kw = r.num("system_power_kw");
  if (const json* st = r.find("stated"))
    for (auto& [k, v] : st->items())
      if (v.is_number()) s.stated[k] = v.get<double>();
  s.sources = r.strings("sources");
  s.notes = r.str("notes");
  if (s.sources.empty()) fail(r.where, ": every entry must name its sources");
  return s;
}

}  // namespace

Catalog Catalog::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("hardware catalog ", dir, ": not a directory (use --hw-dir or MLAMOE_DATA)");
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  Catalog c;
  for (auto& path : files) {
    json j;
    try {
      j = json::parse(read_file(path.string()));
    } catch (const json::exception& e) {
      fail(path.string(), ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) fail(path.string(), ": expected a JSON object");
    Reader r{j, path.string()};
    std::string kind = r.str("kind", true);
    if (kind == "hbm_generations") {
      const json* gens = r.find("generations");
      if (!gens || !gens->is_array()) fail(path.string(), ": generations must be a list");
      for (auto& g : *gens) {
        Reader gr{g, path.string() + ": generation"};
        HbmStack s = read_hbm(gr);
        if (gr.strings("sources").empty()) fail(gr.where, " ", s.generation, ": every entry must name its sources");
        c.hbm_[s.generation] = s;
      }
    } else if (kind == "accelerator" || kind == "local") {
      Accelerator a = read_accelerator(r);
      if (c.accelerators_.count(a.id) || c.systems_.count(a.id)) fail(path.string(), ": duplicate id ", a.id);
      if (kind == "local") {
        c.has_local_ = true;
        c.local_template_ = a;
      } else {
        c.accelerators_[a.id] = a;
      }
    } else if (kind == "system") {
      System s = read_system(r);
      if (c.accelerators_.count(s.id) || c.systems_.count(s.id)) fail(path.string(), ": duplicate id ", s.id);
      c.systems_[s.id] = s;
    } else {
      fail(path.string(), ": unknown kind '", kind, "' (accelerator, system, local, hbm_generations)");
    }
  }
  for (auto& [id, s] : c.systems_)
    if (!c.accelerators_.count(s.accelerator)) fail("hardware system ", id, ": unknown accelerator '", s.accelerator, "'");
  // An accelerator's HBM stacks inherit the generation's bus width (2048 bits for HBM4).
  for (auto& [id, a] : c.accelerators_)
    if (a.hbm) {
      auto g = c.hbm_.find(a.hbm->generation);
      if (g == c.hbm_.end()) fail("hardware ", id, ": unknown HBM generation '", a.hbm->generation, "'");
      a.hbm->bus_width_bits = g->second.bus_width_bits;
    }
  return c;
}

std::vector<std::string> Catalog::ids() const {
  std::vector<std::string> out;
  for (auto& [id, a] : accelerators_) out.push_back(id);
  for (auto& [id, s] : systems_) out.push_back(id);
  if (has_local_) out.push_back("local");
  std::sort(out.begin(), out.end());
  return out;
}

HardwareChoice Catalog::resolve(const std::string& id) const {
  if (id == "local" && has_local_) return {measure_local(local_template_), std::nullopt};
  if (auto a = accelerators_.find(id); a != accelerators_.end()) return {a->second, std::nullopt};
  if (auto s = systems_.find(id); s != systems_.end()) return {accelerators_.at(s->second.accelerator), s->second};
  std::string known;
  for (auto& k : ids()) known += (known.empty() ? "" : ", ") + k;
  fail("unknown hardware '", id, "' (known: ", known, ")");
}

std::string default_data_dir() {
  if (const char* d = std::getenv("MLAMOE_DATA"); d && *d) return d;
  return MLAMOE_DATA_DIR;
}

Accelerator measure_local(const Accelerator& base) {
  Accelerator a = base;
  // 256 MiB: far beyond any last-level cache, short enough to run on every plan.
  // The median of three passes' medians, as the kernel probe takes its rates and
  // `mlamoe bench` reports: a typical run of this machine, not its best moment.
  std::vector<double> passes;
  for (int pass = 0; pass < 3; ++pass) passes.push_back(kernels::measure_read_bandwidth_gbps(size_t(256) << 20, 5));
  std::sort(passes.begin(), passes.end());
  a.memory_bandwidth_gbps = passes[1];
  a.peak_dense_tflops["fp32"] = measure_fp32_fma_gflops() / 1000.0;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  a.memory_gb = pages > 0 && page > 0 ? double(pages) * double(page) / 1e9 : 0;
  if (a.memory_bandwidth_gbps <= 0 || a.memory_gb <= 0) fail("local hardware: measurement failed");
  a.scale_up_domain = 1;
  return a;
}

}  // namespace mlamoe::planner
