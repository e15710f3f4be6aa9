#include "codec/value.h"

#include <cstdio>

namespace xr {

std::optional<int64_t> Value::to_int() const {
  if (is_int()) return as_int();
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::nullopt;
}

std::optional<bool> Value::to_bool() const {
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_none()) return false;
  return std::nullopt;
}

std::optional<std::string_view> Value::to_string() const {
  if (is_string()) return std::string_view(as_string());
  return std::nullopt;
}

const Value* Value::find(std::string_view key) const {
  if (!is_dict()) return nullptr;
  for (const auto& [k, v] : as_dict()) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

Value* Value::find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

void Value::set(std::string_view key, Value value) {
  if (!is_dict()) v_ = Dict{};
  for (auto& [k, v] : as_dict()) {
    if (k.is_string() && k.as_string() == key) {
      v = std::move(value);
      return;
    }
  }
  as_dict().emplace_back(Value::text(std::string(key)), std::move(value));
}

namespace {

void AppendEscaped(std::string& out, const std::string& s, size_t max_len) {
  for (unsigned char c : s) {
    if (out.size() >= max_len) return;
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
}

void Repr(const Value& v, std::string& out, size_t max_len) {
  if (out.size() >= max_len) return;
  switch (v.kind()) {
    case Value::Kind::kNone: out += "None"; break;
    case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; break;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); break;
    case Value::Kind::kBigInt: out += v.as_bigint().decimal; break;
    case Value::Kind::kFloat: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%g", v.as_float().value);
      out += buf;
      break;
    }
    case Value::Kind::kBytes:
      out += "b'";
      AppendEscaped(out, v.as_string(), max_len);
      out += '\'';
      break;
    case Value::Kind::kText:
      out += '\'';
      AppendEscaped(out, v.as_string(), max_len);
      out += '\'';
      break;
    case Value::Kind::kList: {
      out += '[';
      bool first = true;
      for (const auto& e : v.as_list()) {
        if (!first) out += ", ";
        first = false;
        Repr(e, out, max_len);
        if (out.size() >= max_len) break;
      }
      out += ']';
      break;
    }
    case Value::Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.as_dict()) {
        if (!first) out += ", ";
        first = false;
        Repr(k, out, max_len);
        out += ": ";
        Repr(e, out, max_len);
        if (out.size() >= max_len) break;
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string Value::repr(size_t max_len) const {
  std::string out;
  Repr(*this, out, max_len);
  if (out.size() > max_len) {
    out.resize(max_len);
    out += "...";
  }
  return out;
}

const Value* Caps::get(std::string_view key) const {
  if (const Value* v = dict_.find(key)) return v;
  // Nested form: "a.b.c" -> dict_["a"]["b"]["c"], trying every split point.
  const Value* cur = &dict_;
  std::string_view rest = key;
  while (true) {
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos) return nullptr;
    const Value* next = cur->find(rest.substr(0, dot));
    if (next == nullptr || !next->is_dict()) return nullptr;
    cur = next;
    rest = rest.substr(dot + 1);
    if (const Value* v = cur->find(rest)) return v;
  }
}

const Value* Caps::get_scalar(std::string_view key) const {
  const Value* v = get(key);
  if (v != nullptr && v->is_dict()) return v->find("");
  return v;
}

std::string Caps::get_string(std::string_view key, std::string_view def) const {
  const Value* v = get_scalar(key);
  if (v && v->is_string()) return v->as_string();
  return std::string(def);
}

int64_t Caps::get_int(std::string_view key, int64_t def) const {
  const Value* v = get_scalar(key);
  if (v == nullptr) return def;
  return v->to_int().value_or(def);
}

bool Caps::get_bool(std::string_view key, bool def) const {
  const Value* v = get_scalar(key);
  if (v == nullptr) return def;
  return v->to_bool().value_or(def);
}

std::vector<std::string> Caps::get_strings(std::string_view key) const {
  std::vector<std::string> out;
  const Value* v = get(key);
  if (v == nullptr) return out;
  if (v->is_list()) {
    for (const auto& e : v->as_list()) {
      if (e.is_string()) out.push_back(e.as_string());
    }
  } else if (v->is_string()) {
    std::string_view s = v->as_string();
    while (!s.empty()) {
      size_t comma = s.find(',');
      out.emplace_back(s.substr(0, comma));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
  }
  return out;
}

}  // namespace xr
