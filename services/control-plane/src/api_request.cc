// Request parsing and response shaping shared by the handlers: bodies with
// known fields only, typed field and query readers, pages, rows as JSON, and
// the name reservations and aggregate sequence numbers handlers write with.
#include <algorithm>
#include <charconv>

#include "api.h"
#include "plfm/core/strings.h"

namespace plfm::cp {

Result<json::Json> parseBody(const http::Request& req,
                             std::initializer_list<std::string_view> allowed) {
  if (req.body.empty()) {
    return Error(apierr::kInvalidJson, "the request body must be a JSON object");
  }
  // Depth and width are bounded before anything recursive touches the body.
  auto j = json::parse(req.body, json::kRequestLimits);
  if (!j) {
    return Error(apierr::kInvalidJson, j.error().message())
        .with("reason", std::string(j.error().detail("reason")))
        .with("offset", std::string(j.error().detail("offset")));
  }
  if (!j->is_object()) {
    return Error(apierr::kInvalidJson, "the request body must be a JSON object");
  }
  for (const auto& [key, _] : j->items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string known;
      for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
      std::string msg = "unknown field '";
      msg.append(key).append("' (accepted: ").append(known).append(")");
      if (auto m = closestMatch(key, std::vector<std::string_view>(allowed))) {
        msg.append("; did you mean '").append(*m).append("'?");
      }
      return Error(apierr::kUnknownField, msg).with("field", key);
    }
  }
  return j;
}

Result<json::Json> parseSecretBody(const http::Request& req,
                                   std::initializer_list<std::string_view> allowed) {
  auto body = parseBody(req, allowed);
  if (body || !body.error().is(apierr::kUnknownField)) return body;
  const std::string name(body.error().detail("field"));
  const bool plain = !name.empty() && name.size() <= 32 &&
                     std::all_of(name.begin(), name.end(),
                                 [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
  if (plain) return body;
  std::string known;
  for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
  return Error(apierr::kUnknownField,
               "the body has a field this route does not accept (accepted: " + known + ")");
}

Result<std::string> requireString(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' is required")
        .with("field", std::string(field));
  }
  if (!it->is_string()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' must be a string")
        .with("field", std::string(field));
  }
  return it->get<std::string>();
}

Result<std::optional<std::string>> optionalString(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' must be a string")
        .with("field", std::string(field));
  }
  return std::optional<std::string>(it->get<std::string>());
}

Error invalidField(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

Result<void> checkName(std::string_view field, std::string_view v) {
  auto bad = [&](const std::string& why) { return invalidField(field, why); };
  if (v.empty() || v.size() > 63) return bad("must be 1 to 63 characters");
  if (v[0] < 'a' || v[0] > 'z') return bad("must start with a lowercase letter");
  if (v.back() == '-') return bad("must not end with '-'");
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return bad("may only contain lowercase letters, digits and '-'");
    }
  }
  return ok();
}

bool validProcessName(std::string_view p) {
  bool good = !p.empty() && p.size() <= 30 && p[0] >= 'a' && p[0] <= 'z';
  for (char c : p) good = good && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  return good;
}

Result<int64_t> queryInt(const http::Request& req, std::string_view name, int64_t def, int64_t lo,
                         int64_t hi) {
  auto v = req.queryParam(name);
  if (!v) return def;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || out < lo || out > hi) {
    return Error(apierr::kInvalidQuery, "query parameter '" + std::string(name) +
                                            "' must be an integer " + std::to_string(lo) + ".." +
                                            std::to_string(hi))
        .with("field", std::string(name));
  }
  return out;
}

Result<Page> parsePage(const http::Request& req, std::string_view id_prefix) {
  Page p;
  if (auto l = req.queryParam("limit")) {
    int v = 0;
    auto [ptr, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
    if (ec != std::errc() || ptr != l->data() + l->size() || v < 1 || v > 200) {
      return Error(apierr::kInvalidQuery, "query parameter 'limit' must be an integer 1..200")
          .with("field", "limit");
    }
    p.limit = v;
  }
  if (auto c = req.queryParam("cursor")) {
    const std::string prefix = std::string(id_prefix) + "_";
    if (!c->starts_with(prefix) || c->size() != prefix.size() + 26) {
      return Error(apierr::kInvalidQuery, "query parameter 'cursor' is not a valid cursor")
          .with("field", "cursor");
    }
    p.cursor = std::string(*c);
  }
  return p;
}

json::Json rowToJson(const pg::ResultSet& rs, int row) {
  json::Json o = json::Json::object();
  for (int c = 0; c < rs.columns(); ++c) {
    const std::string name(rs.columnName(c));
    if (rs.isNull(row, c)) {
      o[name] = nullptr;
      continue;
    }
    switch (rs.columnKind(c)) {
      case pg::ResultSet::Kind::kBool:
        o[name] = rs.text(row, c) == "t";
        break;
      case pg::ResultSet::Kind::kInteger:
        o[name] = rs.int64(row, c).value_or(0);
        break;
      case pg::ResultSet::Kind::kJson:
        o[name] = json::parse(rs.text(row, c)).value_or(json::Json());
        break;
      case pg::ResultSet::Kind::kText:
        o[name] = std::string(rs.text(row, c));
        break;
    }
  }
  return o;
}

json::Json rowsToJson(const pg::ResultSet& rs) {
  json::Json items = json::Json::array();
  for (int i = 0; i < rs.rows(); ++i) items.push_back(rowToJson(rs, i));
  return items;
}

json::Json pageJson(const pg::ResultSet& rs, const Page& page) {
  json::Json items = rowsToJson(rs);
  json::Json next = nullptr;
  if (static_cast<int>(items.size()) == page.limit && !items.empty()) {
    next = items.back()["id"];
  }
  return {{"items", items}, {"next_cursor", next}};
}

Result<http::Response> listChildren(Ctx& ctx, const std::string& columns, const std::string& table,
                                    const std::string& id_col, const std::string& parent_col,
                                    const std::string& parent_id, const Page& page) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, ctx.db().exec("SELECT " + columns + " FROM " + table + " WHERE " + parent_col +
                                 " = $1 AND ($2::text IS NULL OR " + id_col + " > $2) ORDER BY " +
                                 id_col + " LIMIT $3",
                             {parent_id, page.cursor, page.limit}));
  return jsonResponse(200, pageJson(rs, page));
}

Result<int> nextAggregateSeq(pg::Transaction& tx, std::string_view aggregate_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT coalesce(max(aggregate_seq), 0) FROM events "
                                         "WHERE aggregate_id = $1",
                                         {std::string(aggregate_id)}));
  PLFM_ASSIGN_OR_RETURN(int64_t v, rs.int64(0, 0));
  return static_cast<int>(v + 1);
}

Result<void> reserveName(pg::Transaction& tx, const std::string& scope, const std::string& name,
                         const std::string& owner_id, std::string_view what) {
  // In a group commit (pg::BatchedWrites) the INSERT goes with the
  // command's next statement, usually its append; a taken name fails that.
  return tx.connection().execDeferred(
      "INSERT INTO name_reservations (scope, name, owner_id) VALUES ($1, $2, $3)",
      {scope, name, owner_id},
      pg::Connection::OnError{pg::errc::kUniqueViolation,
                              Error(plfm::errc::kAlreadyExists,
                                    std::string(what) + " named '" + name + "' already exists")
                                  .with("field", "name")});
}

Result<void> releaseName(pg::Transaction& tx, const std::string& scope,
                         const std::string& owner_id) {
  PLFM_TRY(tx.exec("DELETE FROM name_reservations WHERE scope = $1 AND owner_id = $2",
                   {scope, owner_id}));
  return ok();
}

Mutation showTokenOnce(json::Json body, std::vector<NewEvent> events) {
  body["token_redacted"] = false;
  json::Json replay = body;
  replay["token"] = nullptr;
  replay["token_redacted"] = true;
  Mutation m;
  m.body = std::move(body);
  m.replay_body = std::move(replay);
  m.events = std::move(events);
  return m;
}

}  // namespace plfm::cp
