#include "train/tasks.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace mlamoe::train {

TaskKind parse_task(const std::string& name) {
  if (name == "arith") return TaskKind::Arith;
  if (name == "countdown") return TaskKind::Countdown;
  fail("unknown task '", name, "' (arith or countdown)");
}

const char* task_name(TaskKind k) { return k == TaskKind::Arith ? "arith" : "countdown"; }

static uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool is_held_out(const Problem& p) { return fnv1a(p.prompt) % 10 == 0; }

static int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Column arithmetic from the least significant digit, the way it is taught: each step
// names its digits and carry/borrow, so a small model can learn it position by position.
static std::string addition_scratch(int64_t a, int64_t b) {
  std::string s;
  int64_t carry = 0;
  while (a > 0 || b > 0) {
    int64_t da = a % 10, db = b % 10, sum = da + db + carry;
    if (!s.empty()) s += ',';
    s += std::to_string(da) + "+" + std::to_string(db) + (carry ? "+1" : "") + "=" + std::to_string(sum);
    carry = sum / 10;
    a /= 10, b /= 10;
  }
  return s;
}

static std::string subtraction_scratch(int64_t a, int64_t b) {  // a >= b
  std::string s;
  int64_t borrow = 0;
  while (a > 0) {
    int64_t da = a % 10, db = b % 10;
    int64_t top = da - borrow < db ? da + 10 : da;
    if (!s.empty()) s += ',';
    s += std::to_string(top) + "-" + std::to_string(db) + (borrow ? "-1" : "") + "=" + std::to_string(top - db - borrow);
    borrow = top != da;
    a /= 10, b /= 10;
  }
  return s;
}

void check_digits(int max_digits) {
  if (max_digits < 1 || max_digits > 9) fail("--digits must be 1..9, got ", max_digits);
}

static Problem arith_problem(std::mt19937_64& rng, int max_digits) {
  auto number = [&] {
    int64_t digits = uniform(rng, 1, max_digits);
    if (digits == 1) return uniform(rng, 0, 9);
    int64_t scale = 1;  // 10^(digits-1): a leading digit 1..9, then the rest
    for (int64_t d = 1; d < digits; ++d) scale *= 10;
    int64_t lead = uniform(rng, 1, 9);
    return lead * scale + uniform(rng, 0, scale - 1);
  };
  int64_t a = number(), b = number();
  bool add = uniform(rng, 0, 1) == 0;
  if (!add && a < b) std::swap(a, b);
  Problem p;
  p.kind = TaskKind::Arith;
  p.prompt = "What is " + std::to_string(a) + (add ? "+" : "-") + std::to_string(b) + "?";
  p.target = add ? a + b : a - b;
  std::string scratch = add ? addition_scratch(a, b) : subtraction_scratch(a, b);
  if (scratch.empty()) scratch = "0";
  p.solution = "<think>" + scratch + "</think>" + std::to_string(p.target);
  return p;
}

static Problem countdown_problem(std::mt19937_64& rng) {
  for (;;) {
    std::vector<int64_t> nums{uniform(rng, 1, 25), uniform(rng, 1, 25), uniform(rng, 1, 10)};
    std::shuffle(nums.begin(), nums.end(), rng);
    const char ops[] = {'+', '-', '*'};
    char op1 = ops[uniform(rng, 0, 2)], op2 = ops[uniform(rng, 0, 2)];
    auto apply = [](int64_t x, char op, int64_t y) { return op == '+' ? x + y : op == '-' ? x - y : x * y; };
    int64_t first = apply(nums[0], op1, nums[1]);
    int64_t target = apply(first, op2, nums[2]);
    if (first <= 0 || target <= 0 || target > 300) continue;
    std::string e1 = std::to_string(nums[0]) + op1 + std::to_string(nums[1]);
    std::string expr = (op2 == '*' && op1 != '*' ? "(" + e1 + ")" : e1) + op2 + std::to_string(nums[2]);
    std::vector<int64_t> shown = nums;
    std::shuffle(shown.begin(), shown.end(), rng);
    Problem p;
    p.kind = TaskKind::Countdown;
    p.numbers = shown;
    p.target = target;
    p.prompt = "Use " + std::to_string(shown[0]) + "," + std::to_string(shown[1]) + "," + std::to_string(shown[2]) +
               " to make " + std::to_string(target) + ".";
    p.solution = "<think>" + e1 + "=" + std::to_string(first) + "," + std::to_string(first) + op2 +
                 std::to_string(nums[2]) + "=" + std::to_string(target) + "</think>" + expr;
    return p;
  }
}

static Problem any_problem(TaskKind kind, std::mt19937_64& rng, int max_digits) {
  return kind == TaskKind::Arith ? arith_problem(rng, max_digits) : countdown_problem(rng);
}

Problem training_problem(TaskKind kind, std::mt19937_64& rng, int max_digits) {
  check_digits(max_digits);
  for (;;) {
    Problem p = any_problem(kind, rng, max_digits);
    if (!is_held_out(p)) return p;
  }
}

std::vector<Problem> held_out_set(TaskKind kind, int64_t n, uint64_t seed, int max_digits) {
  check_digits(max_digits);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 17);
  std::vector<Problem> out;
  while (static_cast<int64_t>(out.size()) < n) {
    Problem p = any_problem(kind, rng, max_digits);
    if (is_held_out(p)) out.push_back(std::move(p));
  }
  return out;
}

// ---- rewards ----

static bool parse_integer(const std::string& s, int64_t& v) {
  if (s.empty() || s.size() > 12) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t j = i; j < s.size(); ++j)
    if (!std::isdigit(static_cast<unsigned char>(s[j]))) return false;
  v = std::stoll(s);
  return true;
}

Reward score(const Problem& p, const std::string& completion) {
  Reward r;
  const std::string open = "<think>", close = "</think>";
  size_t end_think = completion.find(close);
  if (completion.rfind(open, 0) != 0 || end_think == std::string::npos) return r;
  std::string answer = completion.substr(end_think + close.size());
  if (answer.empty() || answer.find('<') != std::string::npos || answer.find('\n') != std::string::npos) return r;
  r.well_formed = true;
  if (p.kind == TaskKind::Arith) {
    int64_t v;
    r.correct = parse_integer(answer, v) && v == p.target;
  } else {
    auto e = evaluate_expression(answer);
    if (e && e->value == p.target) {
      std::vector<int64_t> pool = p.numbers;
      bool ok = true;
      for (int64_t u : e->used) {
        auto it = std::find(pool.begin(), pool.end(), u);
        if (it == pool.end()) ok = false;
        else pool.erase(it);
      }
      r.correct = ok;
    }
  }
  return r;
}

namespace {
// expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ; factor := int | '(' expr ')'
struct Parser {
  const std::string& s;
  size_t i = 0;
  int depth = 0;
  std::vector<int64_t> used;
  bool ok = true;
  static constexpr int64_t kLimit = 1'000'000'000;

  int64_t expr() {
    int64_t v = term();
    while (ok && i < s.size() && (s[i] == '+' || s[i] == '-')) {
      char op = s[i++];
      int64_t w = term();
      v = op == '+' ? v + w : v - w;
      check(v);
    }
    return v;
  }
  int64_t term() {
    int64_t v = factor();
    while (ok && i < s.size() && (s[i] == '*' || s[i] == '/')) {
      char op = s[i++];
      int64_t w = factor();
      if (op == '*') v *= w;
      else if (w == 0 || v % w != 0) ok = false;
      else v /= w;
      check(v);
    }
    return v;
  }
  int64_t factor() {
    if (!ok || i >= s.size()) return ok = false, 0;
    if (s[i] == '(') {
      if (++depth > 16) return ok = false, 0;
      ++i;
      int64_t v = expr();
      if (i >= s.size() || s[i] != ')') return ok = false, 0;
      ++i, --depth;
      return v;
    }
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 9) ++i;
    if (i == start) return ok = false, 0;
    int64_t v = std::stoll(s.substr(start, i - start));
    used.push_back(v);
    return v;
  }
  void check(int64_t v) {
    if (v > kLimit || v < -kLimit) ok = false;
  }
};
}  // namespace

std::optional<Evaluated> evaluate_expression(const std::string& expr) {
  if (expr.size() > 200) return std::nullopt;
  Parser p{expr};
  int64_t v = p.expr();
  if (!p.ok || p.i != expr.size()) return std::nullopt;
  return Evaluated{v, p.used};
}

}  // namespace mlamoe::train
