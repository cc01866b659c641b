// mlamoe: one binary, many subcommands (run, chat, serve, bench, info, ...).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "cli/command.h"
#include "common/error.h"

namespace mlamoe::cli {

std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

int parse_and_run(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    // "-sys" -> "--sys": llama.cpp spells some long flags with one dash.
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' && std::isalpha(static_cast<unsigned char>(a[1])) &&
        a.find('=') == std::string::npos)
      a = "-" + a;
    args.push_back(a);
  }
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return body();
}

static void usage() {
  std::printf("mlamoe — DeepSeek-style MLA + MoE inference and training\n\nusage: mlamoe <command> [options]\n\ncommands:\n");
  auto cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& c : cmds) std::printf("  %-12s %s\n", c.name.c_str(), c.summary.c_str());
  std::printf("\n`mlamoe <command> --help` shows a command's options.\n");
}

}  // namespace mlamoe::cli

int main(int argc, char** argv) {
  using namespace mlamoe::cli;
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("mlamoe 0.1.0\n");
    return 0;
  }
  for (auto& c : registry()) {
    if (c.name == argv[1]) {
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const mlamoe::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
      } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "error: out of memory\n");
        return 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "error: unknown command '%s' (see `mlamoe --help`)\n", argv[1]);
  return 2;
}
