// A small Jinja2 renderer: the subset that chat templates (DeepSeek V2/V2.5, V3, R1 and
// most others) use. Statements: for (with loop.*, else, break/continue), if/elif/else,
// set (names and namespace attributes). Expressions: literals, lists, dicts, names,
// attribute/subscript/slice, calls of a few globals (namespace, range,
// raise_exception) and methods (split, strip, startswith, items, get ...), filters
// (trim, length, default, join, upper, lower, tojson ...), tests (defined, none,
// string ...), arithmetic, comparison, `in`, `not`, `and`, `or`, `+`/`~`
// concatenation and the conditional expression. Whitespace control (`{%-`, `-%}`)
// and Hugging Face's environment settings (trim_blocks, lstrip_blocks) are honoured,
// so output matches transformers' apply_chat_template byte for byte.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

namespace mlamoe::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python dicts

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace };
  Value() = default;
  explicit Value(Kind k) : kind(k) {}

  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // also the attributes of a namespace (shared: mutable)

  static Value none() { return Value{Kind::None}; }
  static Value boolean(bool v) { Value x{Kind::Bool}; x.b = v; return x; }
  static Value integer(int64_t v) { Value x{Kind::Int}; x.i = v; return x; }
  static Value number(double v) { Value x{Kind::Float}; x.f = v; return x; }
  static Value string(std::string v) { Value x{Kind::String}; x.s = std::move(v); return x; }
  static Value make_list(List v = {}) { Value x{Kind::List}; x.list = std::make_shared<List>(std::move(v)); return x; }
  static Value make_dict(Dict v = {}) { Value x{Kind::Dict}; x.dict = std::make_shared<Dict>(std::move(v)); return x; }
  static Value from_json(const nlohmann::json& j);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool truthy() const;
  std::string str() const;   // how {{ value }} prints it (Python's str())
  std::string repr() const;  // Python's repr(), used inside lists and dicts
  const Value* find(const std::string& key) const;  // dict / namespace member
};

class Template {
 public:
  // Parses once; throws Error("chat template: line N: ...") on a syntax error.
  explicit Template(const std::string& source);
  ~Template();
  // Renders with the given global variables. raise_exception() and runtime type errors
  // throw Error with the template's message.
  std::string render(const std::map<std::string, Value>& globals) const;

  struct Node;

 private:
  std::vector<std::unique_ptr<Node>> body_;
};

}  // namespace mlamoe::jinja
