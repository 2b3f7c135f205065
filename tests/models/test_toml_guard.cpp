// The guard in front of toml++ 3.3.0 (models/toml_guard.h): inputs that reach undefined
// behaviour or a failed assertion inside toml++ 3.3.0 get a clear origin:line:column error
// instead, and the TOML configs use (non-ASCII text in strings and comments included) still
// parses.
#include "models/toml_guard.h"

#include <gtest/gtest.h>

#include <string>

#include "models/config.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

std::string guard_error(const std::string& text) {
  const std::string e = error_message([&] { check_toml_input(text, "test.toml"); });
  EXPECT_EQ(e.find('\n'), std::string::npos) << "not one line: " << e;
  return e;
}

::testing::AssertionResult refused(const std::string& text, const std::string& where,
                                   const std::string& what) {
  const std::string e = guard_error(text);
  if (e.rfind(where, 0) == 0 && contains(e, what)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << e << "' does not start with '" << where
                                       << "' and name '" << what << "'";
}

TEST(TomlGuard, NonAsciiOutsideStringsIsRefused) {
  // "\xc3\xa6" (U+00E6) reaches TOML_UNREACHABLE in toml++'s whitespace tables.
  EXPECT_TRUE(refused("\xc3\xa6", "test.toml:1:1: ", "got non-ASCII byte 0xc3"));
  EXPECT_TRUE(refused("a = 1\nb = 2 \xcc\xaa\n", "test.toml:2:7: ", "non-ASCII byte 0xcc"));
  EXPECT_TRUE(refused("[\xc3\xa6]\n", "test.toml:1:2: ", "non-ASCII"));
  EXPECT_TRUE(refused("a = [ \"x\"\xc3\xa6 ]\n", "test.toml:1:10: ", "non-ASCII"));
  EXPECT_TRUE(refused("a = \"\\\xc3\xa6\"\n", "test.toml:1:7: ", "invalid escape sequence"));
}

TEST(TomlGuard, ABadFirstCharacterOfATableHeaderIsRefused) {
  // toml++ 3.3.0 fails an assertion on each of these.
  for (const char* text : {"[\x01", "[&", "[ &]", "[[&]]", "[[ =", "[\n", "[=", "[.]"}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(refused(text, "test.toml:1:", "expected a table name after '['"));
  }
  EXPECT_TRUE(refused("a = 1\n  [ &b]\n", "test.toml:2:5: ",
                      "expected a table name after '[', got '&'"));
}

TEST(TomlGuard, MalformedValuesAreRefused) {
  // "a = [ }" fails an assertion in toml++ 3.3.0 too (found by fuzzing guard + toml++).
  EXPECT_TRUE(refused("a = [ }", "test.toml:1:7: ", "expected a value"));
  EXPECT_TRUE(refused("x = \t[}}\t2.5&", "test.toml:1:7: ", "expected a value"));
  EXPECT_TRUE(refused("a = [1,,2]", "test.toml:1:8: ", "expected a value"));
  EXPECT_TRUE(refused("a = {b = 1,}", "test.toml:1:12: ", "expected a key in an inline table"));
  EXPECT_TRUE(refused("a = 1x", "test.toml:1:6: ", "expected the end of the value, got 'x'"));
  EXPECT_TRUE(refused("a = 007", "test.toml:1:5: ", "leading zero"));
  EXPECT_TRUE(refused("a = 1.", "test.toml:1:7: ", "digits after the decimal point"));
  EXPECT_TRUE(refused("a = \"open\n", "test.toml:1:10: ", "unterminated string"));
  EXPECT_TRUE(refused("units = = 3", "test.toml:1:9: ", "expected a value"));
  EXPECT_TRUE(refused("[[layers]\n", "test.toml:1:9: ", "expected ']]'"));
  EXPECT_TRUE(refused("a = " + std::string(100, '['), "test.toml:1:", "nested more than 32"));
}

TEST(TomlGuard, WhatTomlHasButConfigsDoNotIsRefusedClearly) {
  EXPECT_TRUE(refused("s = \"\"\"\\\n\xc2\xa7\"\"\"\n", "test.toml:1:5: ",
                      "multi-line strings are not supported"));
  EXPECT_TRUE(refused("s = '''x'''\n", "test.toml:1:5: ", "multi-line strings"));
  EXPECT_TRUE(refused("d = 1979-05-27\n", "test.toml:1:5: ", "dates and times"));
}

TEST(TomlGuard, ControlCharactersAndBrokenUtf8AreRefused) {
  EXPECT_TRUE(refused("a = 1\x01\n", "test.toml:1:6: ", "byte 0x01"));
  EXPECT_TRUE(refused("# x\x7f\n", "test.toml:1:4: ", "control character byte 0x7f"));
  EXPECT_TRUE(refused("a = \"x\ty\x1b\"\n", "test.toml:1:9: ", "control character byte 0x1b"));
  EXPECT_TRUE(refused("a = \"\xff\"\n", "test.toml:1:6: ", "invalid UTF-8"));
  EXPECT_TRUE(refused("a = \"\xc3\"\n", "test.toml:1:7: ", "invalid UTF-8"));
  EXPECT_TRUE(refused("a = \"\xed\xa0\x80\"\n", "test.toml:1:6: ", "invalid UTF-8"));  // surrogate
  EXPECT_TRUE(refused("a = 1\rb = 2\n", "test.toml:1:6: ", "byte 0x0d"));
}

TEST(TomlGuard, WhatConfigsUseStillPasses) {
  for (const char* text :
       {"a = \"caf\xc3\xa9 \xe2\x80\x94 \xe2\x80\xa8 \\u00e6 \\U0001F600 \\\\ \\\"\"\n",
        "a = 'caf\xc3\xa9 \\'\n", "# caf\xc3\xa9\r\na = 1 # \xc3\xa6\n\n",
        "[b]\nc = [\n  [1, 2], # x\n  [ 3 ],\n]\n", "[ \"q\" . r ]\n[[ s.'t' ]]\nt = { u = 1, v.w = [] }\n",
        "a = \"\\\"[&\"\n", "n = [0, -1_000, +7, 0x1F, 0o17, 0b101, 1.5, -2e-3, 6.0E+1, inf, -nan]\n",
        "b = [true, false]\n", "", "\n\n", "a=1"}) {
    SCOPED_TRACE(text);
    EXPECT_NO_THROW(check_toml_input(text, "test.toml"));
  }
}

TEST(TomlGuard, ParseConfigUsesItAndEveryPresetPassesIt) {
  EXPECT_TRUE(contains(error_message([] { parse_config("\xc3\xa6", "test.toml"); }),
                       "test.toml:1:1: expected a key"));
  EXPECT_TRUE(contains(error_message([] { parse_config("[\x01", "test.toml"); }),
                       "test.toml:1:2: expected a table name after '[', got byte 0x01"));
  for (const PresetInfo& p : list_presets()) EXPECT_NO_THROW(check_toml_input(preset_toml(p.name), p.name));
}

}  // namespace
}  // namespace polytask::models
