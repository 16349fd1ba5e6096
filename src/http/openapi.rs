//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the HTTP API,
//! generated from the route table, so every mounted route is in it with its
//! access rule.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use super::routes;
use crate::auth::access::Access;

pub fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, access, summary) in routes::mounted() {
        // `{path:.*}` (an actix tail pattern) is `{path}` in OpenAPI.
        let path = regex_free(&path);
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match access {
            Access::Public => json!([]),
            Access::Staff(_) => json!([{"staffCookie": []}]),
            Access::Machine => json!([{"apiKey": []}]),
            Access::StaffOrMachine(_) => json!([{"staffCookie": []}, {"apiKey": []}]),
            Access::Conversation { machine: true, .. } => json!([{"staffCookie": []}, {"apiKey": []}, {"conversationToken": []}]),
            Access::Conversation { machine: false, .. } => json!([{"staffCookie": []}, {"conversationToken": []}]),
        };
        let operation = json!({
            "summary": summary,
            "description": format!("Access: {}.", access.describe()),
            "x-access": access.describe(),
            "parameters": parameters,
            "security": security,
            "responses": {
                "200": {"description": "Success"},
                "4XX": {"description": "Refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chathub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Real-time chat hub API. Socket protocols: docs/protocol.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "staffCookie": {"type": "apiKey", "in": "cookie", "name": "chathub_session",
                                "description": "From POST /api/auth/login. State-changing requests also need the X-CSRF-Token header."},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (chathub api-key create, or API_KEY)."},
                "conversationToken": {"type": "http", "scheme": "bearer", "description": "A visitor's conversation token (the socket's welcome frame)."}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
                }
            }
        }
    })
}

fn regex_free(path: &str) -> String {
    let mut out = String::new();
    let mut in_pattern = false;
    for c in path.chars() {
        match c {
            ':' if out.rfind('{') > out.rfind('}') => in_pattern = true,
            '}' => {
                in_pattern = false;
                out.push(c);
            }
            _ if in_pattern => {}
            _ => out.push(c),
        }
    }
    out
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}
