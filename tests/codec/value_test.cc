#include "codec/value.h"

#include <doctest/doctest.h>

using xr::Caps;
using xr::Dict;
using xr::List;
using xr::Value;

TEST_CASE("dict set/find keeps wire order and replaces in place") {
  Value d{Dict{}};
  d.set("b", 1);
  d.set("a", "x");
  d.set("b", 2);
  REQUIRE(d.as_dict().size() == 2);
  CHECK(d.as_dict()[0].first.as_string() == "b");
  CHECK(d.find("b")->as_int() == 2);
  CHECK(d.find("missing") == nullptr);
}

TEST_CASE("erase_if removes by key prefix") {
  Value d{Dict{}};
  d.set("cipher", "AES");
  d.set("cipher.iv", "0123");
  d.set("version", "3.1.3");
  CHECK(d.erase_if([](std::string_view k) { return k.starts_with("cipher"); }) == 2);
  CHECK(d.find("version") != nullptr);
  CHECK(d.as_dict().size() == 1);
}

TEST_CASE("caps: flat dotted keys, nested dicts, lenient types") {
  Value nested{Dict{}};
  nested.set("multi-packet", true);
  Value d{Dict{}};
  d.set("websocket", nested);
  d.set("encoding.flat", 5);
  d.set("rencode", 1);
  d.as_dict().emplace_back(Value::bytes("username"), Value::bytes("foo"));
  d.set("digest", List{"hmac", "hmac+sha256"});
  d.set("csv", "a,b,c");
  Caps caps(d);
  CHECK(caps.get_bool("websocket.multi-packet"));
  CHECK(caps.get_int("encoding.flat") == 5);
  CHECK(caps.get_bool("rencode"));
  CHECK(caps.get_string("username") == "foo");
  CHECK(caps.get_strings("digest") == std::vector<std::string>{"hmac", "hmac+sha256"});
  CHECK(caps.get_strings("csv") == std::vector<std::string>{"a", "b", "c"});
  CHECK(caps.get_int("nope", 7) == 7);
  CHECK_FALSE(caps.get_bool("digest"));
}

TEST_CASE("repr escapes bytes and truncates") {
  Value v{List{"hello", Value::bytes(std::string("\x00\xff", 2)), 3, nullptr, true}};
  CHECK(v.repr() == "['hello', b'\\x00\\xff', 3, None, True]");
  CHECK(Value(std::string_view(std::string(2000, 'a'))).repr(10).size() == 13);
}

TEST_CASE("caps: a 5.0+ key whose own value sits under \"\" in its dict") {
  // {"lz4": {"": True}, "encodings": {"": ["png"], "core": ["rgb"]}, "encryption": {"": "AES", "iv": "x"}}
  Value d = Value(Dict{
      {Value("lz4"), Value(Dict{{Value(""), Value(true)}})},
      {Value("level"), Value(Dict{{Value(""), Value(3)}})},
      {Value("encryption"), Value(Dict{{Value(""), Value("AES")}, {Value("iv"), Value("x")}})},
      {Value("nested"), Value(Dict{{Value("a"), Value(1)}})},
  });
  Caps c(d);
  CHECK(c.get_bool("lz4"));
  CHECK(c.get_int("level") == 3);
  CHECK(c.get_string("encryption") == "AES");
  CHECK(c.get_string("encryption.iv") == "x");
  CHECK(c.get("encryption")->is_dict());  // get() still gives the dict
  CHECK(c.get_int("nested", 7) == 7);     // a dict without "" is not a scalar
  CHECK_FALSE(c.get_bool("nested"));
}
