#include "models/toml_guard.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "kernels/error.h"

namespace polytask::models {

namespace {

bool is_bare_key_character(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string describe(unsigned char c) {
  if (c > 0x20 && c < 0x7f) return cat("'", char(c), "'");
  if (c == ' ') return "a space";
  if (c == '\n') return "the end of the line";
  char text[16];
  std::snprintf(text, sizeof text, "byte 0x%02x", c);
  return text;
}

// A recursive-descent reader of the TOML subset described in toml_guard.h: it builds nothing,
// it only decides whether every byte is where TOML's grammar allows it.
class Guard {
 public:
  Guard(const std::string& text, const std::string& origin) : text_(text), origin_(origin) {}

  void document() {
    while (!at_end()) {
      skip_ws();
      const unsigned char c = peek();
      if (c == '[') {
        table_header();
      } else if (c != '#' && !is_newline()) {
        key_value();
      }
      end_of_line();
    }
  }

 private:
  [[noreturn]] void refuse_at(size_t at, const std::string& what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') ++line, column = 1;
      else ++column;
    }
    fail(origin_, ":", line, ":", column, ": ", what);
  }
  [[noreturn]] void refuse(const std::string& what) const { refuse_at(pos_, what); }
  [[noreturn]] void unexpected(const std::string& expected) const {
    if (at_end()) refuse(cat("expected ", expected, ", got the end of the file"));
    if (peek() >= 0x80)
      refuse(cat("expected ", expected, ", got non-ASCII ", describe(peek()),
                 " (non-ASCII text must be in a quoted string or a comment)"));
    refuse(cat("expected ", expected, ", got ", describe(peek())));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? static_cast<unsigned char>(text_[pos_ + ahead]) : 0;
  }
  bool is_newline() const { return peek() == '\n' || (peek() == '\r' && peek(1) == '\n'); }
  bool consume(const char* token) {
    const size_t n = std::strlen(token);
    if (text_.compare(pos_, n, token) != 0) return false;
    pos_ += n;
    return true;
  }
  void expect(const char* token, const char* what) {
    if (!consume(token)) unexpected(what);
  }

  void skip_ws() {
    while (peek() == ' ' || peek() == '\t') ++pos_;
  }
  // Whitespace, line breaks and comments, as between the values of an array.
  void skip_ws_comments_newlines() {
    for (;;) {
      skip_ws();
      if (peek() == '#') {
        comment();
      } else if (is_newline()) {
        pos_ += peek() == '\r' ? 2 : 1;
      } else {
        return;
      }
    }
  }

  // After a table header or key/value: an optional comment, then the line ends.
  void end_of_line() {
    skip_ws();
    if (peek() == '#') comment();
    if (at_end()) return;
    if (!is_newline()) unexpected("the end of the line or a comment");
    pos_ += peek() == '\r' ? 2 : 1;
  }

  void comment() {
    ++pos_;  // '#'
    while (!at_end() && !is_newline()) text_character("in a comment");
  }

  // One character of a comment or string: tab, printable ASCII or a valid UTF-8 sequence.
  void text_character(const char* where) {
    const unsigned char c = peek();
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        refuse(cat("control character ", describe(c), " ", where,
                   " (only tab may appear; write escapes such as \\n in basic strings)"));
      ++pos_;
      return;
    }
    size_t n = 0;
    uint32_t code = 0;
    if ((c & 0xe0) == 0xc0) n = 2, code = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 3, code = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 4, code = c & 0x07;
    else refuse(cat("invalid UTF-8 ", where, ": unexpected ", describe(c)));
    for (size_t i = 1; i < n; ++i) {
      if ((peek(i) & 0xc0) != 0x80)
        refuse_at(pos_ + i, cat("invalid UTF-8 ", where, ": a multi-byte sequence is cut short"));
      code = code << 6 | (peek(i) & 0x3f);
    }
    static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[n] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
      refuse(cat("invalid UTF-8 ", where,
                 ": an overlong sequence, a surrogate or a code point past U+10FFFF"));
    pos_ += n;
  }

  void table_header() {
    const bool array = consume("[[");
    if (!array) ++pos_;
    skip_ws();
    key("a table name after '['");
    skip_ws();
    expect(array ? "]]" : "]", array ? "']]' closing the table name" : "']' closing the table name");
  }

  void key_value() {
    key("a key, a [table] or a comment");
    skip_ws();
    expect("=", "'=' after the key");
    skip_ws();
    value();
  }

  // A dotted key: simple keys (bare or single-line quoted) joined by '.'.
  void key(const char* what) {
    for (;;) {
      const unsigned char c = peek();
      if (is_bare_key_character(c)) {
        while (is_bare_key_character(peek())) ++pos_;
      } else if ((c == '"' || c == '\'') && !(peek(1) == c && peek(2) == c)) {
        string();
      } else {
        unexpected(what);
      }
      skip_ws();
      if (peek() != '.') return;
      ++pos_;
      skip_ws();
      what = "a key after '.'";
    }
  }

  void value() {
    // Deeper nesting than any config needs would only risk the stack (here and in toml++).
    constexpr int kMaxNesting = 32;
    struct Nesting {
      int& depth;
      explicit Nesting(int& d) : depth(++d) {}
      ~Nesting() { --depth; }
    } nesting(depth_);
    if (depth_ > kMaxNesting) refuse(cat("arrays or inline tables nested more than ", kMaxNesting, " deep"));
    const unsigned char c = peek();
    if (c == '"' || c == '\'') {
      string();
    } else if (c == '[') {
      array();
    } else if (c == '{') {
      inline_table();
    } else if (consume("true") || consume("false")) {
    } else if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n') {
      number();
    } else {
      unexpected("a value (a string, number, true, false, [array] or {table})");
    }
    // What may follow a value, so that "1x" or "truex" stop here.
    const unsigned char next = peek();
    if (!at_end() && next != ' ' && next != '\t' && next != '\n' && next != '\r' &&
        next != ',' && next != ']' && next != '}' && next != '#')
      unexpected("the end of the value");
  }

  void string() {
    const unsigned char quote = peek();
    if (peek(1) == quote && peek(2) == quote)
      refuse("multi-line strings are not supported in polytask configs; use one line");
    ++pos_;
    for (;;) {
      const unsigned char c = peek();
      if (at_end() || is_newline())
        refuse(cat("unterminated string: the line ends before its closing ", char(quote)));
      if (c == quote) {
        ++pos_;
        return;
      }
      if (c == '\\' && quote == '"') {
        escape();
      } else {
        text_character("in a string");
      }
    }
  }

  void escape() {
    ++pos_;  // '\'
    const unsigned char c = peek();
    if (c == 'u' || c == 'U') {
      const size_t digits = c == 'u' ? 4 : 8;
      uint32_t code = 0;
      for (size_t i = 1; i <= digits; ++i) {
        if (!is_hex_digit(peek(i)))
          refuse_at(pos_ + i, cat("\\", char(c), " needs ", digits, " hex digits"));
        const unsigned char h = peek(i);
        code = code * 16 + uint32_t(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        refuse(cat("\\", char(c), text_.substr(pos_ + 1, digits), " is not a Unicode scalar value"));
      pos_ += 1 + digits;
      return;
    }
    if (c == 'b' || c == 't' || c == 'n' || c == 'f' || c == 'r' || c == '"' || c == '\\') {
      ++pos_;
      return;
    }
    refuse(cat("invalid escape sequence: a backslash followed by ", describe(c),
               " (valid: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)"));
  }

  void array() {
    ++pos_;  // '['
    skip_ws_comments_newlines();
    while (peek() != ']') {
      value();
      skip_ws_comments_newlines();
      if (peek() == ',') {
        ++pos_;
        skip_ws_comments_newlines();
      } else if (peek() != ']') {
        unexpected("',' or ']' in an array");
      }
    }
    ++pos_;
  }

  // { key = value, ... } on one line, without a trailing comma (TOML 1.0).
  void inline_table() {
    ++pos_;  // '{'
    skip_ws();
    if (consume("}")) return;
    for (;;) {
      key("a key in an inline table");
      skip_ws();
      expect("=", "'=' after the key");
      skip_ws();
      value();
      skip_ws();
      if (consume("}")) return;
      expect(",", "',' or '}' in an inline table (on one line)");
      skip_ws();
    }
  }

  // Digits with single underscores between them; returns how many digits.
  size_t digits(bool (*is_valid)(unsigned char)) {
    size_t n = 0;
    while (is_valid(peek())) {
      ++pos_, ++n;
      if (peek() == '_' && is_valid(peek(1))) ++pos_;
    }
    return n;
  }

  // TOML's integers and floats (decimal with sign, exponent, '_'; 0x/0o/0b; inf, nan). Dates
  // and times are refused: polytask configs have none. Values out of range are toml++'s to
  // report (it does so cleanly).
  void number() {
    const size_t start = pos_;
    if (peek() == '0' && (peek(1) == 'x' || peek(1) == 'o' || peek(1) == 'b')) {
      const unsigned char base = peek(1);
      pos_ += 2;
      const auto valid = base == 'x'   ? is_hex_digit
                         : base == 'o' ? +[](unsigned char c) { return c >= '0' && c <= '7'; }
                                       : +[](unsigned char c) { return c == '0' || c == '1'; };
      if (digits(valid) == 0) unexpected("digits after 0x, 0o or 0b");
      return;
    }
    if (peek() == '+' || peek() == '-') ++pos_;
    if (consume("inf") || consume("nan")) return;
    const size_t integer_start = pos_;
    if (digits(is_digit) == 0) unexpected("a number");
    if (text_[integer_start] == '0' && pos_ - integer_start > 1)
      refuse_at(integer_start, "a number may not have a leading zero");
    if (peek() == '-' || peek() == ':')
      refuse_at(start, "dates and times are not supported in polytask configs");
    if (peek() == '.') {
      ++pos_;
      if (digits(is_digit) == 0) unexpected("digits after the decimal point");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits(is_digit) == 0) unexpected("digits in the exponent");
    }
  }

  const std::string& text_;
  const std::string& origin_;
  size_t pos_ = 0;
  int depth_ = 0;  // values being read, one inside another
};

}  // namespace

void check_toml_input(const std::string& text, const std::string& origin) {
  Guard(text, origin).document();
}

}  // namespace polytask::models
