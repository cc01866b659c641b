#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "tokenizer/jinja.h"
#include "tokenizer/jinja_ast.h"

namespace mlamoe::jinja {

// ---------------------------------------------------------------------------
// Values

Value Value::from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return none();
    case nlohmann::json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_float: return number(j.get<double>());
    case nlohmann::json::value_t::string: return string(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List l;
      for (const auto& e : j) l.push_back(from_json(e));
      return make_list(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), from_json(it.value()));
      return make_dict(std::move(d));
    }
    default: return Value{};
  }
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b;
    case Kind::Int: return i != 0;
    case Kind::Float: return f != 0;
    case Kind::String: return !s.empty();
    case Kind::List: return !list->empty();
    case Kind::Dict: return !dict->empty();
    case Kind::Namespace: return true;
  }
  return false;
}

static std::string float_repr(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {  // shortest text that reads back exactly (Python repr)
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string Value::str() const {
  switch (kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: return float_repr(f);
    case Kind::String: return s;
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind) {
    case Kind::String: {
      const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
      std::string out(1, q);
      for (char c : s) {
        if (c == q || c == '\\') out += '\\', out += c;
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else out += c;
      }
      return out + q;
    }
    case Kind::List: {
      std::string out = "[";
      for (size_t k = 0; k < list->size(); ++k) out += (k ? ", " : "") + (*list)[k].repr();
      return out + "]";
    }
    case Kind::Dict: {
      std::string out = "{";
      for (size_t k = 0; k < dict->size(); ++k)
        out += (k ? ", " : "") + Value::string((*dict)[k].first).repr() + ": " + (*dict)[k].second.repr();
      return out + "}";
    }
    case Kind::Namespace: return "<Namespace>";
    default: return str();
  }
}

const Value* Value::find(const std::string& key) const {
  if ((kind != Kind::Dict && kind != Kind::Namespace) || !dict) return nullptr;
  for (const auto& [k, v] : *dict)
    if (k == key) return &v;
  return nullptr;
}

bool equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  const bool an = a.kind == K::Int || a.kind == K::Float || a.kind == K::Bool;
  const bool bn = b.kind == K::Int || b.kind == K::Float || b.kind == K::Bool;
  if (an && bn) {
    const double x = a.kind == K::Int ? a.i : a.kind == K::Bool ? a.b : a.f;
    const double y = b.kind == K::Int ? b.i : b.kind == K::Bool ? b.b : b.f;
    return x == y;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined:
    case K::None: return true;
    case K::String: return a.s == b.s;
    case K::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case K::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* o = b.find(k);
        if (!o || !equal(v, *o)) return false;
      }
      return true;
    default: return a.dict == b.dict;
  }
}

// ---------------------------------------------------------------------------
// Evaluation

[[noreturn]] void runtime_error(const std::string& what) { fail("chat template: ", what); }

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::Undefined: return "undefined";
    case Value::Kind::None: return "none";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "string";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Namespace: return "namespace";
  }
  return "?";
}

bool is_number(const Value& v) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Float || v.kind == Value::Kind::Bool; }
double as_double(const Value& v) { return v.kind == Value::Kind::Float ? v.f : v.kind == Value::Kind::Bool ? v.b : static_cast<double>(v.i); }

// Code points of a UTF-8 string as separate strings (Python indexes strings by code point).
std::vector<std::string> characters(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = 1;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0xF0) n = 4;
    else if (c >= 0xE0) n = 3;
    else if (c >= 0xC0) n = 2;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::List: return *v.list;
    case Value::Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& kv : *v.dict) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> out;
      for (auto& c : characters(v.s)) out.push_back(Value::string(c));
      return out;
    }
    case Value::Kind::Undefined: return {};
    default: runtime_error(std::string("'") + kind_name(v.kind) + "' object is not iterable");
  }
}

namespace {

enum class Flow { Normal, Break, Continue };

// Templates come from model files and from --chat-template: bound the work one render
// may do (nodes run, loop iterations, list items and string bytes produced, one unit
// per 256 bytes), so a hostile template fails with one line instead of hanging or
// exhausting memory. The largest conversation the server accepts (4096 messages, 8 MiB)
// uses about a tenth of it with the DeepSeek templates; a prompt of 32 MiB is ~8M
// tokens, far beyond any context.
constexpr uint64_t kMaxRenderWork = 1'000'000;
constexpr uint64_t kLoopIterationWork = 4;  // a loop iteration builds the `loop` dict
constexpr size_t kMaxStringBytes = 32u << 20;

class Renderer {
 public:
  explicit Renderer(const std::map<std::string, Value>& globals) {
    scopes_.emplace_back(globals.begin(), globals.end());
  }
  std::string out;

  Flow exec(const std::vector<NodePtr>& body) {
    for (const auto& n : body) {
      const Flow f = exec(*n);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  using Node = Template::Node;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  uint64_t work_ = 0;

  void charge(uint64_t units) {
    work_ += units;
    if (work_ > kMaxRenderWork) runtime_error("the template does too much work (a loop or a value too large)");
  }
  void check_concat(size_t a, size_t b) {
    if (a + b > kMaxStringBytes) runtime_error("string longer than " + std::to_string(kMaxStringBytes) + " bytes");
  }
  Value charged(Value v) {
    if (v.kind == Value::Kind::String) {
      if (v.s.size() > kMaxStringBytes) runtime_error("string longer than " + std::to_string(kMaxStringBytes) + " bytes");
      charge(1 + v.s.size() / 256);
    } else if (v.kind == Value::Kind::List) {
      charge(1 + v.list->size());
    }
    return v;
  }

  // Whether v holds, at any depth, the attributes `target` of a namespace. Storing such
  // a value in that namespace would make a reference cycle, which shared ownership
  // never frees. Iterative, and each list or dict visited once: values may share
  // structure (a list of itself, doubled in a loop) and nest deeply.
  static bool holds(const Value& v, const Dict* target) {
    if (!v.list && !v.dict) return false;  // the common case, a counter or a string: no allocation
    std::unordered_set<const void*> seen;
    std::vector<const Value*> todo{&v};
    while (!todo.empty()) {
      const Value* x = todo.back();
      todo.pop_back();
      if (x->dict) {
        if (x->dict.get() == target) return true;
        if (seen.insert(x->dict.get()).second)
          for (const auto& kv : *x->dict) todo.push_back(&kv.second);
      }
      if (x->list && seen.insert(x->list.get()).second)
        for (const Value& item : *x->list) todo.push_back(&item);
    }
    return false;
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value{};
  }

  Flow exec(const Node& n) {
    charge(1);
    switch (n.kind) {
      case Node::Text: out += n.text; break;
      case Node::Output: out += charged(Value::string(eval(*n.expr).str())).s; break;
      case Node::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || eval(*cond).truthy()) return exec(body);
        break;
      case Node::For: return exec_for(n);
      case Node::Set: {
        Value v = eval(*n.expr);
        if (n.targets.size() == 1) {
          scopes_.back()[n.targets[0]] = std::move(v);
        } else {
          Value ns = lookup(n.targets[0]);
          if (ns.kind != Value::Kind::Namespace) runtime_error("cannot set attribute of non-namespace '" + n.targets[0] + "'");
          if (holds(v, ns.dict.get()))
            runtime_error("cannot store namespace '" + n.targets[0] + "' inside itself (" + n.targets[0] + "." + n.targets[1] + ")");
          bool found = false;
          for (auto& kv : *ns.dict)
            if (kv.first == n.targets[1]) kv.second = v, found = true;
          if (!found) ns.dict->emplace_back(n.targets[1], v);
        }
        break;
      }
      case Node::Break: return Flow::Break;
      case Node::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n) {
    std::vector<Value> items;
    for (Value& item : iterate(eval(*n.expr))) {
      if (n.filter) {
        scopes_.emplace_back();
        bind_targets(n, item);
        const bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (!keep) continue;
      }
      items.push_back(std::move(item));
    }
    if (items.empty()) return exec(n.else_body) == Flow::Break ? Flow::Normal : Flow::Normal;
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      charge(kLoopIterationWork);
      scopes_.emplace_back();
      Dict loop = {{"index", Value::integer(k + 1)},         {"index0", Value::integer(k)},
                   {"revindex", Value::integer(len - k)},    {"revindex0", Value::integer(len - k - 1)},
                   {"first", Value::boolean(k == 0)},        {"last", Value::boolean(k == len - 1)},
                   {"length", Value::integer(len)},
                   {"previtem", k > 0 ? items[k - 1] : Value{}}, {"nextitem", k + 1 < len ? items[k + 1] : Value{}}};
      scopes_.back()["loop"] = Value::make_dict(std::move(loop));
      bind_targets(n, items[k]);
      const Flow f = exec(n.body);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = item;
      return;
    }
    if (item.kind != Value::Kind::List || item.list->size() != n.targets.size())
      runtime_error("cannot unpack loop item into " + std::to_string(n.targets.size()) + " variables");
    for (size_t t = 0; t < n.targets.size(); ++t) scopes_.back()[n.targets[t]] = (*item.list)[t];
  }

  Value eval(const Expr& e);
  Value call(const Expr& e);
  Value binary(const std::string& op, const Value& a, const Value& b);

  // Arguments of a call/filter/test after the first `skip`, split into positional and keyword.
  void arguments(const Expr& e, size_t skip, std::vector<Value>& pos, std::map<std::string, Value>& kw) {
    const size_t n_kw = e.kwarg_names.size(), n = e.args.size();
    for (size_t k = skip; k < n - n_kw; ++k) pos.push_back(eval(*e.args[k]));
    for (size_t k = 0; k < n_kw; ++k) kw[e.kwarg_names[k]] = eval(*e.args[n - n_kw + k]);
  }
};

Value Renderer::eval(const Expr& e) {
  switch (e.kind) {
    case Expr::Literal: return e.value;
    case Expr::Name: return lookup(e.name);
    case Expr::ListLit: {
      List l;
      for (const auto& a : e.args) l.push_back(eval(*a));
      return Value::make_list(std::move(l));
    }
    case Expr::DictLit: {
      Dict d;
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) d.emplace_back(eval(*e.args[k]).str(), eval(*e.args[k + 1]));
      return Value::make_dict(std::move(d));
    }
    case Expr::Attr: {
      const Value obj = eval(*e.args[0]);
      if (obj.is_undefined()) runtime_error("'" + e.name + "' of an undefined value");
      const Value* v = obj.find(e.name);
      return v ? *v : Value{};
    }
    case Expr::Index: {
      const Value obj = eval(*e.args[0]), key = eval(*e.args[1]);
      if (obj.is_undefined()) runtime_error("subscript of an undefined value");
      if (obj.kind == Value::Kind::Dict || obj.kind == Value::Kind::Namespace) {
        const Value* v = obj.find(key.str());
        return v ? *v : Value{};
      }
      if ((obj.kind == Value::Kind::List || obj.kind == Value::Kind::String) && key.kind == Value::Kind::Int) {
        const std::vector<Value> items = obj.kind == Value::Kind::List ? *obj.list : iterate(obj);
        const int64_t n = static_cast<int64_t>(items.size()), k = key.i < 0 ? key.i + n : key.i;
        return k >= 0 && k < n ? items[k] : Value{};
      }
      return Value{};
    }
    case Expr::Slice: {
      const Value obj = eval(*e.args[0]);
      const std::vector<Value> items = iterate(obj);
      const int64_t n = static_cast<int64_t>(items.size());
      const int64_t step = e.args[3] ? eval(*e.args[3]).i : 1;
      if (step == 0) runtime_error("slice step cannot be zero");
      const auto bound = [&](const ExprPtr& x, int64_t def) {
        if (!x) return def;
        int64_t v = eval(*x).i;
        if (v < 0) v += n;
        return step > 0 ? std::clamp<int64_t>(v, 0, n) : std::clamp<int64_t>(v, -1, n - 1);
      };
      const int64_t lo = bound(e.args[1], step > 0 ? 0 : n - 1), hi = bound(e.args[2], step > 0 ? n : -1);
      List l;
      for (int64_t k = lo; step > 0 ? k < hi : k > hi; k += step) l.push_back(items[k]);
      if (obj.kind == Value::Kind::String) {
        std::string s;
        for (auto& c : l) s += c.s;
        return Value::string(s);
      }
      return Value::make_list(std::move(l));
    }
    case Expr::Call: return charged(call(e));
    case Expr::Filter: {
      std::vector<Value> pos;
      std::map<std::string, Value> kw;
      const Value subject = eval(*e.args[0]);
      arguments(e, 1, pos, kw);
      return charged(apply_filter(e.name, subject, pos, kw));
    }
    case Expr::Test: {
      std::vector<Value> pos;
      std::map<std::string, Value> kw;
      const Value subject = eval(*e.args[0]);
      arguments(e, 1, pos, kw);
      return Value::boolean(apply_test(e.name, subject, pos) != e.negated);
    }
    case Expr::Neg: {
      const Value v = eval(*e.args[0]);
      if (v.kind == Value::Kind::Int) {
        if (v.i == std::numeric_limits<int64_t>::min()) runtime_error("integer overflow in unary -");
        return Value::integer(-v.i);
      }
      if (is_number(v)) return Value::number(-as_double(v));
      runtime_error(std::string("bad operand for unary -: ") + kind_name(v.kind));
    }
    case Expr::Not: return Value::boolean(!eval(*e.args[0]).truthy());
    case Expr::And: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    case Expr::Or: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    case Expr::Cond:
      if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
      return e.args[2] ? eval(*e.args[2]) : Value{};
    case Expr::Binary: return charged(binary(e.name, eval(*e.args[0]), eval(*e.args[1])));
  }
  return Value{};
}

Value Renderer::call(const Expr& e) {
  std::vector<Value> pos;
  std::map<std::string, Value> kw;
  const Expr& callee = *e.args[0];
  if (callee.kind == Expr::Attr) {  // a method: "text".split(...), message.get(...)
    const Value self = eval(*callee.args[0]);
    arguments(e, 1, pos, kw);
    return call_method(self, callee.name, pos, kw);
  }
  if (callee.kind != Expr::Name) runtime_error("only named functions and methods can be called");
  arguments(e, 1, pos, kw);
  return call_global(callee.name, pos, kw);
}

Value Renderer::binary(const std::string& op, const Value& a, const Value& b) {
  using K = Value::Kind;
  if (op == "~") {
    std::string x = a.str(), y = b.str();
    check_concat(x.size(), y.size());
    return Value::string(x + y);
  }
  if (op == "==") return Value::boolean(equal(a, b));
  if (op == "!=") return Value::boolean(!equal(a, b));
  if (op == "in") {
    if (b.kind == K::String) return Value::boolean(a.kind == K::String && b.s.find(a.s) != std::string::npos);
    if (b.kind == K::List) return Value::boolean(std::any_of(b.list->begin(), b.list->end(), [&](const Value& x) { return equal(x, a); }));
    if (b.kind == K::Dict || b.kind == K::Namespace) return Value::boolean(b.find(a.str()) != nullptr);
    if (b.is_undefined()) return Value::boolean(false);
    runtime_error(std::string("'in' needs a string, list or dict, not ") + kind_name(b.kind));
  }
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    int c;
    if (a.kind == K::String && b.kind == K::String) c = a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    else if (is_number(a) && is_number(b)) c = as_double(a) < as_double(b) ? -1 : as_double(a) > as_double(b) ? 1 : 0;
    else runtime_error(std::string("cannot compare ") + kind_name(a.kind) + " and " + kind_name(b.kind));
    return Value::boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
  }
  if (op == "+") {
    if (a.kind == K::String && b.kind == K::String) {
      check_concat(a.s.size(), b.s.size());
      return Value::string(a.s + b.s);
    }
    if (a.kind == K::List && b.kind == K::List) {
      charge(a.list->size() + b.list->size());  // before copying, so doubling stops early
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(l));
    }
  }
  if (op == "*" && a.kind == K::String && b.kind == K::Int) {
    if (b.i > 0 && !a.s.empty() && static_cast<uint64_t>(b.i) > kMaxStringBytes / a.s.size())
      runtime_error("string longer than " + std::to_string(kMaxStringBytes) + " bytes");
    std::string s;
    for (int64_t k = 0; k < b.i; ++k) s += a.s;
    return Value::string(s);
  }
  if (!is_number(a) || !is_number(b))
    runtime_error(std::string("unsupported operands for ") + op + ": " + kind_name(a.kind) + " and " + kind_name(b.kind));
  const bool ints = a.kind != K::Float && b.kind != K::Float;
  const double x = as_double(a), y = as_double(b);
  const int64_t xi = a.kind == K::Bool ? a.b : a.i, yi = b.kind == K::Bool ? b.b : b.i;
  if ((op == "/" || op == "//" || op == "%") && y == 0) runtime_error("division by zero");
  if (ints && (op == "+" || op == "-" || op == "*")) {  // Python's ints are unbounded; ours are not
    int64_t r;
    const bool overflow = op == "+"   ? __builtin_add_overflow(xi, yi, &r)
                          : op == "-" ? __builtin_sub_overflow(xi, yi, &r)
                                      : __builtin_mul_overflow(xi, yi, &r);
    if (overflow) runtime_error("integer overflow in " + op);
    return Value::integer(r);
  }
  if (ints && (op == "//" || op == "%") && xi == std::numeric_limits<int64_t>::min() && yi == -1)
    runtime_error("integer overflow in " + op);
  if (op == "+") return Value::number(x + y);
  if (op == "-") return Value::number(x - y);
  if (op == "*") return Value::number(x * y);
  if (op == "/") return Value::number(x / y);
  if (op == "//") {
    if (!ints) return Value::number(std::floor(x / y));
    int64_t q = xi / yi;
    if ((xi % yi != 0) && ((xi < 0) != (yi < 0))) --q;  // Python floors
    return Value::integer(q);
  }
  if (op == "%") {
    if (!ints) return Value::number(x - std::floor(x / y) * y);
    int64_t r = xi % yi;
    if (r != 0 && ((r < 0) != (yi < 0))) r += yi;
    return Value::integer(r);
  }
  runtime_error("unknown operator " + op);
}

}  // namespace

}  // namespace mlamoe::jinja

namespace mlamoe::jinja {
std::string Template::render(const std::map<std::string, Value>& globals) const {
  Renderer r(globals);
  r.exec(body_);
  return std::move(r.out);
}
}  // namespace mlamoe::jinja
