// Parsing: the template is cut into text, {{ expression }} and {% statement %} pieces
// (applying whitespace control), then statements are nested into a tree.
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "tokenizer/jinja.h"
#include "tokenizer/jinja_ast.h"

namespace mlamoe::jinja {

// ---------------------------------------------------------------------------
// Expression tokens

namespace {

struct Token {
  enum Type { Name, Number, String, Op, End } type = End;
  std::string text;
};

[[noreturn]] void syntax_error(int line, const std::string& what) { fail("chat template: line ", line, ": ", what); }

std::vector<Token> lex_expression(const std::string& src, int line) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < src.size()) {
    const char c = src[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < src.size() && (std::isalnum(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      out.push_back({Token::Name, src.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < src.size() && (std::isdigit(static_cast<unsigned char>(src[j])) || src[j] == '.' || src[j] == '_')) {
        if (src[j] == '.' && (j + 1 >= src.size() || !std::isdigit(static_cast<unsigned char>(src[j + 1])))) break;
        ++j;
      }
      out.push_back({Token::Number, src.substr(i, j - i)});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string s;
      size_t j = i + 1;
      for (; j < src.size() && src[j] != c; ++j) {
        if (src[j] == '\\' && j + 1 < src.size()) {
          const char e = src[++j];
          switch (e) {
            case 'n': s += '\n'; break;
            case 't': s += '\t'; break;
            case 'r': s += '\r'; break;
            case '0': s += '\0'; break;
            case '\\': case '\'': case '"': s += e; break;
            default: s += '\\', s += e;
          }
        } else {
          s += src[j];
        }
      }
      if (j >= src.size()) syntax_error(line, "unterminated string literal");
      out.push_back({Token::String, s});
      i = j + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two)
        if (src.compare(i, 2, t) == 0) op = t;
      if (std::strchr("+-*/%~<>=()[]{},.:|!", c) == nullptr) syntax_error(line, std::string("unexpected character '") + c + "'");
      out.push_back({Token::Op, op});
      i += op.size();
    }
  }
  out.push_back({Token::End, ""});
  return out;
}

}  // namespace

namespace {

class ExprParser {
  // Templates come from model files: bound the recursion a hostile one could cause.
  struct Depth {
    int& d;
    Depth(int& depth, int line) : d(depth) {
      if (++d > 600) syntax_error(line, "expression nested too deeply");
    }
    ~Depth() { --d; }
  };

 public:
  ExprParser(std::vector<Token> t, int line) : t_(std::move(t)), line_(line) {}
  const Token& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_end() const { return peek().type == Token::End; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).type == Token::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).type == Token::Name && peek(k).text == n; }
  bool accept_op(const char* op) { return is_op(op) ? (++p_, true) : false; }
  bool accept_name(const char* n) { return is_name(n) ? (++p_, true) : false; }
  void expect_op(const char* op) {
    if (!accept_op(op)) syntax_error(line_, std::string("expected '") + op + "' near '" + peek().text + "'");
  }
  std::string expect_name() {
    if (peek().type != Token::Name) syntax_error(line_, "expected a name near '" + peek().text + "'");
    return t_[p_++].text;
  }
  void expect_end() {
    if (!at_end()) syntax_error(line_, "unexpected '" + peek().text + "'");
  }

  ExprPtr expression() {  // conditional expression: a if cond else b
    ExprPtr e = or_expr();
    while (is_name("if")) {
      ++p_;
      auto c = make(Expr::Cond);
      c->args.push_back(std::move(e));
      c->args.push_back(or_expr());
      c->args.push_back(accept_name("else") ? expression() : nullptr);
      e = std::move(c);
    }
    return e;
  }
  // Without the conditional expression (for "for x in y if cond").
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (accept_name("or")) e = binary(Expr::Or, "or", std::move(e), and_expr());
    return e;
  }

 private:
  ExprPtr make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    return e;
  }
  ExprPtr binary(Expr::Kind k, const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make(k);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (accept_name("and")) e = binary(Expr::And, "and", std::move(e), not_expr());
    return e;
  }
  ExprPtr not_expr() {
    Depth depth(depth_, line_);
    if (accept_name("not")) {
      auto e = make(Expr::Not);
      e->args.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    for (;;) {
      static const char* ops[] = {"==", "!=", "<", "<=", ">", ">="};
      bool matched = false;
      for (const char* op : ops)
        if (is_op(op)) {
          ++p_;
          e = binary(Expr::Binary, op, std::move(e), math1());
          matched = true;
          break;
        }
      if (matched) continue;
      if (is_name("in")) {
        ++p_;
        e = binary(Expr::Binary, "in", std::move(e), math1());
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        auto n = make(Expr::Not);
        n->args.push_back(binary(Expr::Binary, "in", std::move(e), math1()));
        e = std::move(n);
      } else if (is_name("is")) {
        ++p_;
        auto t = make(Expr::Test);
        t->negated = accept_name("not");
        t->name = expect_name();
        t->args.push_back(std::move(e));
        if (accept_op("(")) call_args(*t);
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[p_++].text;
      e = binary(Expr::Binary, op, std::move(e), concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (accept_op("~")) e = binary(Expr::Binary, "~", std::move(e), math2());
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = unary();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[p_++].text;
      e = binary(Expr::Binary, op, std::move(e), unary());
    }
    return e;
  }
  ExprPtr unary() {
    Depth depth(depth_, line_);
    if (accept_op("-")) {
      auto e = make(Expr::Neg);
      e->args.push_back(unary());
      return e;
    }
    if (accept_op("+")) return unary();
    ExprPtr e = postfix(primary());
    while (accept_op("|")) {  // filters bind tighter than binary operators
      auto f = make(Expr::Filter);
      f->name = expect_name();
      f->args.push_back(std::move(e));
      if (accept_op("(")) call_args(*f);
      e = postfix(std::move(f));
    }
    return e;
  }
  void call_args(Expr& call) {  // after "(": positional then keyword arguments
    while (!accept_op(")")) {
      if (peek().type == Token::Name && is_op("=", 1)) {
        call.kwarg_names.push_back(t_[p_].text);
        p_ += 2;
      } else if (!call.kwarg_names.empty()) {
        syntax_error(line_, "positional argument after keyword argument");
      }
      call.args.push_back(expression());
      if (!is_op(")")) expect_op(",");
    }
  }
  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (accept_op(".")) {
        auto a = make(Expr::Attr);
        a->name = expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (accept_op("[")) {
        ExprPtr lo, hi, step;
        bool slice = false;
        if (!is_op(":")) lo = expression();
        if (accept_op(":")) {
          slice = true;
          if (!is_op("]") && !is_op(":")) hi = expression();
          if (accept_op(":") && !is_op("]")) step = expression();
        }
        expect_op("]");
        auto s = make(slice ? Expr::Slice : Expr::Index);
        s->args.push_back(std::move(e));
        s->args.push_back(std::move(lo));
        if (slice) s->args.push_back(std::move(hi)), s->args.push_back(std::move(step));
        e = std::move(s);
      } else if (accept_op("(")) {
        auto c = make(Expr::Call);
        c->args.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr primary() {
    Depth depth(depth_, line_);
    const Token tok = peek();
    ++p_;
    if (tok.type == Token::String) {
      std::string s = tok.text;
      while (peek().type == Token::String) s += t_[p_++].text;  // adjacent literals concatenate
      auto e = make(Expr::Literal);
      e->value = Value::string(s);
      return e;
    }
    if (tok.type == Token::Number) {
      auto e = make(Expr::Literal);
      std::string digits;
      for (char c : tok.text)
        if (c != '_') digits += c;
      try {
        e->value = digits.find('.') != std::string::npos ? Value::number(std::stod(digits))
                                                         : Value::integer(std::stoll(digits));
      } catch (const std::exception&) {  // std::out_of_range: more digits than int64 / double hold
        syntax_error(line_, "number " + tok.text.substr(0, 40) + " is out of range");
      }
      return e;
    }
    if (tok.type == Token::Name) {
      auto e = make(Expr::Literal);
      if (tok.text == "true" || tok.text == "True") e->value = Value::boolean(true);
      else if (tok.text == "false" || tok.text == "False") e->value = Value::boolean(false);
      else if (tok.text == "none" || tok.text == "None") e->value = Value::none();
      else e->kind = Expr::Name, e->name = tok.text;
      return e;
    }
    if (tok.type == Token::Op && tok.text == "(") {
      ExprPtr e = expression();
      if (is_op(",")) {  // tuple: treated as a list
        auto l = make(Expr::ListLit);
        l->args.push_back(std::move(e));
        while (accept_op(",") && !is_op(")")) l->args.push_back(expression());
        e = std::move(l);
      }
      expect_op(")");
      return e;
    }
    if (tok.type == Token::Op && tok.text == "[") {
      auto l = make(Expr::ListLit);
      while (!accept_op("]")) {
        l->args.push_back(expression());
        if (!is_op("]")) expect_op(",");
      }
      return l;
    }
    if (tok.type == Token::Op && tok.text == "{") {
      auto d = make(Expr::DictLit);
      while (!accept_op("}")) {
        d->args.push_back(expression());
        expect_op(":");
        d->args.push_back(expression());
        if (!is_op("}")) expect_op(",");
      }
      return d;
    }
    syntax_error(line_, "unexpected '" + tok.text + "' in expression");
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  int line_;
  int depth_ = 0;
};

}  // namespace
// ---------------------------------------------------------------------------
// Template pieces and statements

namespace {

struct Piece {
  enum Type { Text, Expression, Statement } type;
  std::string src;
  int line;
};

// Cuts the template into pieces, applying `{%-`/`-%}` whitespace control and, like
// transformers' environment, trim_blocks (drop the newline after a block tag) and
// lstrip_blocks (drop the indentation before a block tag).
std::vector<Piece> split_template(const std::string& s) {
  std::vector<Piece> out;
  size_t pos = 0;
  int line = 1;
  bool strip_left = false, trim_newline = false, line_starting = true;
  for (;;) {
    size_t open = pos;
    for (;;) {
      open = s.find('{', open);
      if (open == std::string::npos || open + 1 >= s.size()) {
        open = std::string::npos;
        break;
      }
      if (s[open + 1] == '{' || s[open + 1] == '%' || s[open + 1] == '#') break;
      ++open;
    }
    std::string text = s.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (strip_left) {
      text.erase(0, text.find_first_not_of(" \t\r\n"));
      if (text.find_first_not_of(" \t\r\n") == std::string::npos) text.clear();
    } else if (trim_newline) {
      if (text.rfind("\n", 0) == 0) text.erase(0, 1);
      else if (text.rfind("\r\n", 0) == 0) text.erase(0, 2);
    }
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Piece::Text, text, line});
      return out;
    }
    const char kind = s[open + 1];
    const char modifier = open + 2 < s.size() ? s[open + 2] : 0;
    if (modifier == '-') {
      const size_t keep = text.find_last_not_of(" \t\r\n");
      text.erase(keep == std::string::npos ? 0 : keep + 1);
    } else if (kind != '{' && modifier != '+') {
      const size_t line_start = text.rfind('\n') + 1;  // npos + 1 == 0
      if ((line_start > 0 || line_starting) && text.find_first_not_of(" \t", line_start) == std::string::npos)
        text.erase(line_start);
    }
    if (!text.empty()) out.push_back({Piece::Text, text, line});
    line += static_cast<int>(std::count(s.begin() + pos, s.begin() + open, '\n'));

    // Find the closing delimiter, skipping string literals inside expressions.
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t p = open + 2, end = std::string::npos;
    char quote = 0;
    for (; p + 1 < s.size(); ++p) {
      if (kind != '#' && quote) {
        if (s[p] == '\\') ++p;
        else if (s[p] == quote) quote = 0;
      } else if (kind != '#' && (s[p] == '\'' || s[p] == '"')) {
        quote = s[p];
      } else if (s.compare(p, 2, close) == 0) {
        end = p;
        break;
      }
    }
    if (end == std::string::npos) syntax_error(line, "missing '" + close + "'");
    const size_t inner_begin = open + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
    strip_left = end > inner_begin && s[end - 1] == '-';
    const size_t inner_end = strip_left ? end - 1 : end;
    if (kind != '#') {
      out.push_back({kind == '{' ? Piece::Expression : Piece::Statement, s.substr(inner_begin, inner_end - inner_begin), line});
    }
    line += static_cast<int>(std::count(s.begin() + open, s.begin() + end, '\n'));
    pos = end + 2;
    trim_newline = kind != '{' && !strip_left;
    line_starting = trim_newline && pos < s.size() && s[pos] == '\n';
  }
}

class StatementParser {
 public:
  explicit StatementParser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  std::vector<NodePtr> parse_all() {
    auto body = parse_body({});
    if (i_ < pieces_.size()) syntax_error(pieces_[i_].line, "unexpected '" + keyword(pieces_[i_]) + "'");
    return body;
  }

 private:
  static std::string keyword(const Piece& p) {
    const size_t b = p.src.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = b;
    while (e < p.src.size() && (std::isalnum(static_cast<unsigned char>(p.src[e])) || p.src[e] == '_')) ++e;
    return p.src.substr(b, e - b);
  }

  // Parses until a statement whose keyword is in `stop` (left unconsumed) or the end.
  std::vector<NodePtr> parse_body(const std::vector<std::string>& stop) {
    std::vector<NodePtr> body;
    while (i_ < pieces_.size()) {
      const Piece& p = pieces_[i_];
      auto node = std::make_unique<Template::Node>();
      node->line = p.line;
      if (p.type == Piece::Text) {
        node->kind = Template::Node::Text;
        node->text = p.src;
        ++i_;
      } else if (p.type == Piece::Expression) {
        ExprParser ep(lex_expression(p.src, p.line), p.line);
        node->kind = Template::Node::Output;
        node->expr = ep.expression();
        ep.expect_end();
        ++i_;
      } else {
        const std::string kw = keyword(p);
        if (std::find(stop.begin(), stop.end(), kw) != stop.end()) return body;
        if (!statement(*node, kw)) continue;  // a no-op tag
      }
      body.push_back(std::move(node));
    }
    if (!stop.empty()) syntax_error(pieces_.empty() ? 0 : pieces_.back().line, "missing '{% " + stop.back() + " %}'");
    return body;
  }

  bool statement(Template::Node& node, const std::string& kw) {
    const Piece& p = pieces_[i_];
    if ((kw == "if" || kw == "for") && ++nesting_ > 200) syntax_error(p.line, "blocks nested too deeply");
    ExprParser ep(lex_expression(p.src, p.line), p.line);
    ep.expect_name();
    ++i_;
    if (kw == "if") {
      node.kind = Template::Node::If;
      ExprPtr cond = ep.expression();
      ep.expect_end();
      for (;;) {
        auto branch = parse_body({"elif", "else", "endif"});
        node.branches.emplace_back(std::move(cond), std::move(branch));
        const Piece& q = pieces_[i_];
        const std::string next = keyword(q);
        ExprParser qp(lex_expression(q.src, q.line), q.line);
        qp.expect_name();
        ++i_;
        if (next == "endif") {
          --nesting_;
          break;
        }
        if (next == "elif") {
          cond = qp.expression();
        } else {
          cond = nullptr;
          node.branches.emplace_back(nullptr, parse_body({"endif"}));
          ++i_;
          --nesting_;
          break;
        }
        qp.expect_end();
      }
    } else if (kw == "for") {
      node.kind = Template::Node::For;
      node.targets.push_back(ep.expect_name());
      while (ep.accept_op(",")) node.targets.push_back(ep.expect_name());
      if (!ep.accept_name("in")) syntax_error(p.line, "expected 'in' in for loop");
      node.expr = ep.or_expr();
      if (ep.accept_name("if")) node.filter = ep.or_expr();
      ep.expect_end();
      node.body = parse_body({"else", "endfor"});
      if (keyword(pieces_[i_]) == "else") {
        ++i_;
        node.else_body = parse_body({"endfor"});
      }
      ++i_;
      --nesting_;
    } else if (kw == "set") {
      node.kind = Template::Node::Set;
      node.targets.push_back(ep.expect_name());
      if (ep.accept_op(".")) node.targets.push_back(ep.expect_name());
      if (!ep.accept_op("=")) syntax_error(p.line, "only '{% set name = value %}' is supported");
      node.expr = ep.expression();
      ep.expect_end();
    } else if (kw == "break" || kw == "continue") {
      node.kind = kw == "break" ? Template::Node::Break : Template::Node::Continue;
    } else if (kw == "generation" || kw == "endgeneration") {
      return false;  // transformers' assistant-mask markers: no output
    } else {
      syntax_error(p.line, "unsupported tag '{% " + kw + " %}'");
    }
    return true;
  }

  std::vector<Piece> pieces_;
  size_t i_ = 0;
  int nesting_ = 0;
};

}  // namespace

Template::Template(const std::string& source) {
  // Like jinja2: newlines are normalized to "\n" and one trailing newline is dropped.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  body_ = StatementParser(split_template(src)).parse_all();
}
Template::~Template() = default;

}  // namespace mlamoe::jinja
