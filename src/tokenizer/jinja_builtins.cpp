// Built-in functions, methods, filters and tests of the Jinja subset, with Python's
// semantics where chat templates can observe them.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

#include "tokenizer/jinja.h"
#include "tokenizer/jinja_ast.h"

namespace mlamoe::jinja {

namespace {

std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) b = s.find_first_not_of(chars) == std::string::npos ? s.size() : s.find_first_not_of(chars);
  if (right) {
    const size_t k = s.find_last_not_of(chars);
    e = k == std::string::npos ? 0 : k + 1;
  }
  return b < e ? s.substr(b, e - b) : "";
}
const std::string kWhitespace = " \t\n\r\f\v";

// Python's json.dumps(sort_keys=True) as jinja2's |tojson uses it, with its HTML-safe
// escaping of <, >, & and '.
void json_text(const Value& v, int indent, int level, std::string& out) {
  const auto newline = [&](int lvl) {
    if (indent >= 0) out += '\n' + std::string(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.b ? "true" : "false"; return;
    case Value::Kind::Int:
    case Value::Kind::Float: out += v.str(); return;
    case Value::Kind::String: {
      out += '"';
      for (size_t i = 0; i < v.s.size();) {
        const auto c = static_cast<unsigned char>(v.s[i]);
        uint32_t cp = c;
        size_t n = 1;
        if (c >= 0xF0) cp = c & 0x07, n = 4;
        else if (c >= 0xE0) cp = c & 0x0F, n = 3;
        else if (c >= 0xC0) cp = c & 0x1F, n = 2;
        for (size_t k = 1; k < n && i + k < v.s.size(); ++k) cp = (cp << 6) | (v.s[i + k] & 0x3F);
        i += n;
        char buf[16];
        const auto u = [&](uint32_t x) { std::snprintf(buf, sizeof buf, "\\u%04x", x), out += buf; };
        if (cp == '"') out += "\\\"";
        else if (cp == '\\') out += "\\\\";
        else if (cp == '\n') out += "\\n";
        else if (cp == '\r') out += "\\r";
        else if (cp == '\t') out += "\\t";
        else if (cp == '\b') out += "\\b";
        else if (cp == '\f') out += "\\f";
        else if (cp == '<' || cp == '>' || cp == '&' || cp == '\'') u(cp);
        else if (cp < 0x20 || cp >= 0x7F) {
          if (cp >= 0x10000) u(0xD800 + ((cp - 0x10000) >> 10)), u(0xDC00 + ((cp - 0x10000) & 0x3FF));
          else u(cp);
        } else out += static_cast<char>(cp);
      }
      out += '"';
      return;
    }
    case Value::Kind::List: {
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += indent >= 0 ? "," : ", ";
        newline(level + 1);
        json_text((*v.list)[k], indent, level + 1, out);
      }
      if (!v.list->empty()) newline(level);
      out += ']';
      return;
    }
    default: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : *v.dict) items.push_back(&kv);
      std::sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += indent >= 0 ? "," : ", ";
        newline(level + 1);
        json_text(Value::string(items[k]->first), indent, level + 1, out);
        out += ": ";
        json_text(items[k]->second, indent, level + 1, out);
      }
      if (!items.empty()) newline(level);
      out += '}';
    }
  }
}


const Value& arg(const std::vector<Value>& args, size_t k, const std::map<std::string, Value>& kw, const char* name,
                 const Value& def) {
  if (k < args.size()) return args[k];
  auto it = kw.find(name);
  return it != kw.end() ? it->second : def;
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List parts;
  if (sep.kind != Value::Kind::String) {  // split on runs of whitespace
    size_t i = 0;
    while (true) {
      i = s.find_first_not_of(kWhitespace, i);
      if (i == std::string::npos) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(Value::string(strip(s.substr(i), kWhitespace, false, true)));
        break;
      }
      size_t j = s.find_first_of(kWhitespace, i);
      parts.push_back(Value::string(s.substr(i, j == std::string::npos ? std::string::npos : j - i)));
      if (j == std::string::npos) break;
      i = j;
    }
    return Value::make_list(std::move(parts));
  }
  if (sep.s.empty()) runtime_error("split(): empty separator");
  size_t i = 0;
  for (;;) {
    const size_t j = s.find(sep.s, i);
    if (j == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit)) {
      parts.push_back(Value::string(s.substr(i)));
      break;
    }
    parts.push_back(Value::string(s.substr(i, j - i)));
    i = j + sep.s.size();
  }
  return Value::make_list(std::move(parts));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t i = 0; (i = s.find(from, i)) != std::string::npos; i += to.size()) s.replace(i, from.size(), to);
  return s;
}

std::string title_case(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c));
    c = alpha ? static_cast<char>(start ? std::toupper(c) : std::tolower(c)) : c;
    start = !alpha;
  }
  return out;
}

std::string case_map(std::string s, int (*f)(int)) {
  for (char& c : s) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return s;
}

bool starts_or_ends(const std::string& s, const Value& what, bool start) {
  const auto one = [&](const std::string& x) {
    return x.size() <= s.size() && (start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0);
  };
  if (what.kind == Value::Kind::List) return std::any_of(what.list->begin(), what.list->end(), [&](const Value& v) { return one(v.s); });
  return one(what.str());
}

}  // namespace

Value call_global(const std::string& name, const std::vector<Value>& args, const std::map<std::string, Value>& kwargs) {
  if (name == "raise_exception") runtime_error(args.empty() ? "raise_exception()" : args[0].str());
  if (name == "namespace") {
    Value ns{Value::Kind::Namespace};
    ns.dict = std::make_shared<Dict>();
    for (const auto& [k, v] : kwargs) ns.dict->emplace_back(k, v);
    return ns;
  }
  if (name == "dict") {
    Dict d;
    for (const auto& [k, v] : kwargs) d.emplace_back(k, v);
    return Value::make_dict(std::move(d));
  }
  if (name == "range") {
    if (args.empty() || args.size() > 3) runtime_error("range() takes 1 to 3 arguments");
    int64_t lo = 0, hi, step = 1;
    if (args.size() == 1) hi = args[0].i;
    else lo = args[0].i, hi = args[1].i;
    if (args.size() == 3) step = args[2].i;
    if (step == 0) runtime_error("range() step must not be zero");
    if ((static_cast<__int128>(hi) - lo) / step > 1000000) runtime_error("range() too long");
    List l;
    // Counted in 128 bits: lo + k * step never overflows, even next to INT64_MAX.
    const __int128 span = static_cast<__int128>(hi) - lo, count = span / step + (span % step != 0);
    for (__int128 k = 0; k < count; ++k) l.push_back(Value::integer(static_cast<int64_t>(lo + k * step)));
    return Value::make_list(std::move(l));
  }
  if (name == "strftime_now") {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char buf[256];
    std::tm tm{};
    localtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, args.empty() ? "%Y-%m-%d" : args[0].str().c_str(), &tm);
    return Value::string(buf);
  }
  runtime_error("unknown function '" + name + "'");
}

Value call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                  const std::map<std::string, Value>& kwargs) {
  static const Value kNone = Value::none();
  if (self.kind == Value::Kind::String) {
    const std::string& s = self.s;
    const auto chars = [&]() {
      const Value& c = arg(args, 0, kwargs, "chars", kNone);
      return c.kind == Value::Kind::String ? c.s : kWhitespace;
    };
    if (name == "split") return split(s, arg(args, 0, kwargs, "sep", kNone), arg(args, 1, kwargs, "maxsplit", Value::integer(-1)).i);
    if (name == "strip") return Value::string(strip(s, chars(), true, true));
    if (name == "lstrip") return Value::string(strip(s, chars(), true, false));
    if (name == "rstrip") return Value::string(strip(s, chars(), false, true));
    if (name == "startswith") return Value::boolean(starts_or_ends(s, arg(args, 0, kwargs, "prefix", kNone), true));
    if (name == "endswith") return Value::boolean(starts_or_ends(s, arg(args, 0, kwargs, "suffix", kNone), false));
    if (name == "upper") return Value::string(case_map(s, ::toupper));
    if (name == "lower") return Value::string(case_map(s, ::tolower));
    if (name == "title") return Value::string(title_case(s));
    if (name == "capitalize") return Value::string(s.empty() ? s : case_map(s.substr(0, 1), ::toupper) + case_map(s.substr(1), ::tolower));
    if (name == "replace" && args.size() >= 2) return Value::string(replace_all(s, args[0].str(), args[1].str()));
    if (name == "find" && !args.empty()) {
      const size_t k = s.find(args[0].str());
      return Value::integer(k == std::string::npos ? -1 : static_cast<int64_t>(characters(s.substr(0, k)).size()));
    }
  }
  if (self.kind == Value::Kind::Dict || self.kind == Value::Kind::Namespace) {
    if (name == "items" || name == "keys" || name == "values") {
      List l;
      for (const auto& [k, v] : *self.dict)
        l.push_back(name == "keys" ? Value::string(k) : name == "values" ? v : Value::make_list({Value::string(k), v}));
      return Value::make_list(std::move(l));
    }
    if (name == "get") {
      const Value* v = args.empty() ? nullptr : self.find(args[0].str());
      return v ? *v : (args.size() > 1 ? args[1] : kNone);
    }
  }
  if (self.is_undefined()) runtime_error("'" + name + "' of an undefined value");
  runtime_error(std::string("unknown method '") + name + "' of " + kind_name(self.kind));
}

Value apply_filter(const std::string& name, const Value& v, const std::vector<Value>& args,
                   const std::map<std::string, Value>& kwargs) {
  static const Value kNone = Value::none(), kEmpty = Value::string("");
  if (name == "trim" || name == "strip") {
    const Value& c = arg(args, 0, kwargs, "chars", kNone);
    return Value::string(strip(v.str(), c.kind == Value::Kind::String ? c.s : kWhitespace, true, true));
  }
  if (name == "length" || name == "count") {
    if (v.kind == Value::Kind::String) return Value::integer(static_cast<int64_t>(characters(v.s).size()));
    return Value::integer(static_cast<int64_t>(iterate(v).size()));
  }
  if (name == "upper") return Value::string(case_map(v.str(), ::toupper));
  if (name == "lower") return Value::string(case_map(v.str(), ::tolower));
  if (name == "title") return Value::string(title_case(v.str()));
  if (name == "capitalize") return call_method(Value::string(v.str()), "capitalize", {}, {});
  if (name == "default" || name == "d") {
    const bool boolean = arg(args, 1, kwargs, "boolean", Value::boolean(false)).truthy();
    const bool use_default = v.is_undefined() || (boolean && !v.truthy());
    return use_default ? arg(args, 0, kwargs, "default_value", kEmpty) : v;
  }
  if (name == "join") {
    const std::string sep = arg(args, 0, kwargs, "d", kEmpty).str();
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) out += (first ? "" : sep) + x.str(), first = false;
    return Value::string(out);
  }
  if (name == "first" || name == "last") {
    const auto items = iterate(v);
    return items.empty() ? Value{} : name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::make_list(iterate(v));
  if (name == "reverse") {
    auto items = iterate(v);
    std::reverse(items.begin(), items.end());
    if (v.kind == Value::Kind::String) return apply_filter("join", Value::make_list(items), {}, {});
    return Value::make_list(std::move(items));
  }
  if (name == "string") return Value::string(v.str());
  if (name == "safe" || name == "e" || name == "escape") return v;
  if (name == "int") return Value::integer(is_number(v) ? static_cast<int64_t>(as_double(v)) : std::atoll(v.str().c_str()));
  if (name == "float") return Value::number(is_number(v) ? as_double(v) : std::atof(v.str().c_str()));
  if (name == "abs") return v.kind == Value::Kind::Int ? Value::integer(v.i < 0 ? -v.i : v.i) : Value::number(std::abs(as_double(v)));
  if (name == "replace" && args.size() >= 2) return Value::string(replace_all(v.str(), args[0].str(), args[1].str()));
  if (name == "items") return call_method(v, "items", {}, {});
  if (name == "tojson") {
    const Value& indent = arg(args, 0, kwargs, "indent", kNone);
    std::string out;
    json_text(v, indent.kind == Value::Kind::Int ? static_cast<int>(indent.i) : -1, 0, out);
    return Value::string(out);
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (args.empty()) runtime_error(name + " needs an attribute name");
    List out;
    for (const Value& x : iterate(v)) {
      const Value* a = x.find(args[0].str());
      const Value attr = a ? *a : Value{};
      const bool ok = args.size() < 2 ? attr.truthy()
                                      : apply_test(args[1].str(), attr, std::vector<Value>(args.begin() + 2, args.end()));
      if (ok == (name == "selectattr")) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "map") {
    const Value& attribute = arg(args, 99, kwargs, "attribute", kNone);
    List out;
    for (const Value& x : iterate(v)) {
      if (attribute.kind == Value::Kind::String) {
        const Value* a = x.find(attribute.s);
        out.push_back(a ? *a : Value{});
      } else if (!args.empty()) {
        out.push_back(apply_filter(args[0].str(), x, std::vector<Value>(args.begin() + 1, args.end()), {}));
      }
    }
    return Value::make_list(std::move(out));
  }
  runtime_error("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.kind == K::None;
  if (name == "string") return v.kind == K::String;
  if (name == "number") return v.kind == K::Int || v.kind == K::Float;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "mapping") return v.kind == K::Dict;
  if (name == "iterable") return v.kind == K::List || v.kind == K::Dict || v.kind == K::String;
  if (name == "sequence") return v.kind == K::List || v.kind == K::Dict || v.kind == K::String;
  if (name == "even" || name == "odd") {
    if (v.kind != K::Int) runtime_error("'" + name + "' test needs an integer");
    return (v.i % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") return !args.empty() && args[0].i != 0 && v.i % args[0].i == 0;
  if (name == "equalto" || name == "eq" || name == "sameas") return !args.empty() && equal(v, args[0]);
  if (name == "ne") return args.empty() || !equal(v, args[0]);
  if (name == "in") {
    if (args.empty()) return false;
    if (args[0].kind == K::String) return v.kind == K::String && args[0].s.find(v.s) != std::string::npos;
    const auto items = iterate(args[0]);
    return std::any_of(items.begin(), items.end(), [&](const Value& x) { return equal(x, v); });
  }
  runtime_error("unknown test '" + name + "'");
}

}  // namespace mlamoe::jinja
