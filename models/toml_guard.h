// A check in front of toml++ 3.3.0 (Debian 12's), which has undefined behaviour on some
// malformed inputs instead of a parse error (fixed upstream after 3.3.0; marzer/tomlplusplus
// issues 190, 294, 295). The paths, as found in its sources and with -fsanitize=undefined:
//
//  - Whitespace classification of a non-ASCII character reaches TOML_UNREACHABLE for most code
//    points (is_non_ascii_horizontal_whitespace). The parser asks it wherever whitespace may
//    appear: anywhere outside strings and comments ("\xc3\xa6", "a = 1 \xc3\xa6", "[\xc3\xa6]"),
//    after a backslash in a basic string ("\"\\\xc3\xa6"), and inside a multi-line basic
//    string after a line-ending backslash ("\"\"\"\\\n\xc2\xa7").
//  - A table header whose first key character is neither a bare-key character nor a quote
//    ("[\x01", "[&", "[=", "[\n", "[[ &") fails an assertion (an abort; undefined behaviour
//    in a build without assertions).
//
// Those paths are many (a fuzzer finds more: "a = [ }" also fails an assertion), and all of
// them are reached only by malformed input. So check_toml_input admits only syntactically
// valid TOML, of the subset configs need, and refuses everything else with
// "<origin>:<line>:<column>: <what>" (column in bytes) before toml++ sees it:
//
//   lines of key = value, [table] and [[array.of.tables]], comments; keys bare, quoted or
//   dotted; values: single-line basic and literal strings (valid escapes and UTF-8, no control
//   characters), integers (also 0x/0o/0b) and floats (also inf, nan), true/false, arrays
//   (over several lines, with comments, a trailing comma), inline tables (one line).
//   Refused although TOML has them: multi-line strings, dates and times. Non-ASCII text only
//   inside strings and comments.
//
// What passes is valid TOML, so toml++ takes only its paths for well-formed documents; the
// errors left to it are semantic (a duplicate key, a table defined twice, a number out of
// range), which it reports cleanly. Checked by a fuzzer of guard + toml++ under
// -fsanitize=undefined,address with assertions on (report of issue 14).
#pragma once

#include <string>

namespace polytask::models {

void check_toml_input(const std::string& text, const std::string& origin);

}  // namespace polytask::models
