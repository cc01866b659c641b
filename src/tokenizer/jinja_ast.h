// The parsed form of a Jinja template (internal to the renderer).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja.h"

namespace mlamoe::jinja {

struct Expr {
  enum Kind { Literal, Name, ListLit, DictLit, Attr, Index, Slice, Call, Filter, Test, Neg, Not, Binary, And, Or, Cond };
  Kind kind;
  Value value;              // Literal
  std::string name;         // Name, Attr, Call (method/global), Filter, Test, Binary (operator)
  std::vector<std::unique_ptr<Expr>> args;  // operands / call arguments (slice: 3, null = absent)
  std::vector<std::string> kwarg_names;     // parallel to the trailing args that are keyword arguments
  bool negated = false;     // Test: "is not"
};
using ExprPtr = std::unique_ptr<Expr>;

struct Template::Node {
  enum Kind { Text, Output, If, For, Set, Break, Continue } kind;
  std::string text;                               // Text
  ExprPtr expr;                                   // Output, Set value, For iterable
  std::vector<std::pair<ExprPtr, std::vector<std::unique_ptr<Node>>>> branches;  // If (null cond = else)
  std::vector<std::string> targets;               // For loop variables; Set: name or {ns, attr}
  ExprPtr filter;                                 // For ... if cond
  std::vector<std::unique_ptr<Node>> body, else_body;
  int line = 0;
};
using NodePtr = std::unique_ptr<Template::Node>;

bool equal(const Value& a, const Value& b);  // Python ==
[[noreturn]] void runtime_error(const std::string& what);  // Error("chat template: ...")
const char* kind_name(Value::Kind k);
bool is_number(const Value& v);
double as_double(const Value& v);
std::vector<std::string> characters(const std::string& s);  // UTF-8 code points
std::vector<Value> iterate(const Value& v);                  // what a for loop visits

// Built-in functions, methods, filters and tests (jinja_builtins.cpp).
Value call_global(const std::string& name, const std::vector<Value>& args, const std::map<std::string, Value>& kwargs);
Value call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                  const std::map<std::string, Value>& kwargs);
Value apply_filter(const std::string& name, const Value& subject, const std::vector<Value>& args,
                   const std::map<std::string, Value>& kwargs);
bool apply_test(const std::string& name, const Value& subject, const std::vector<Value>& args);

}  // namespace mlamoe::jinja
