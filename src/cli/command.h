// Subcommands register themselves: each src/cli/cmd_*.cpp ends with
// MLAMOE_COMMAND("name", "one-line summary", run_fn), and main.cpp dispatches.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace mlamoe::cli {

using CommandFn = int (*)(int argc, char** argv);

struct Command {
  std::string name;
  std::string summary;
  CommandFn run;
};

std::vector<Command>& registry();

struct Registrar {
  Registrar(const char* name, const char* summary, CommandFn fn) { registry().push_back({name, summary, fn}); }
};

// Parses argv with CLI11 after turning llama.cpp-style multi-letter short flags
// (-sys, -ngl) into long ones, then runs body(). Errors from parsing print CLI11's
// message and exit 2; mlamoe::Error is handled by main (one line, exit 1).
int parse_and_run(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

// Shared flags of the model-running commands (-t, --seed ...) live beside their users.

}  // namespace mlamoe::cli

#define MLAMOE_CAT2(a, b) a##b
#define MLAMOE_CAT(a, b) MLAMOE_CAT2(a, b)
#define MLAMOE_COMMAND(name, summary, fn) \
  static ::mlamoe::cli::Registrar MLAMOE_CAT(mlamoe_registrar_, __LINE__)(name, summary, fn)
