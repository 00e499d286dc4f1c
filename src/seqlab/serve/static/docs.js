// An offline reading of /openapi.json (Swagger UI would come from a CDN): each endpoint with
// its summary, description and request/response schemas, references resolved.
"use strict";

function resolve(schema, spec, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 8) return schema;
  if (schema.$ref) return resolve(spec.components.schemas[schema.$ref.split("/").pop()], spec, depth + 1);
  const out = Array.isArray(schema) ? [] : {};
  for (const [key, value] of Object.entries(schema)) out[key] = resolve(value, spec, depth + 1);
  return out;
}

function block(title, schema) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = title;
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(schema, null, 2);
  details.append(summary, pre);
  return details;
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  const root = document.getElementById("endpoints");
  root.replaceChildren();
  const intro = document.createElement("p");
  intro.textContent = `${spec.info.title} ${spec.info.version}: ${spec.info.description || ""}`;
  root.append(intro);
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const h = document.createElement("h2");
      h.textContent = `${method.toUpperCase()} ${path}`;
      const p = document.createElement("p");
      p.textContent = op.description || op.summary || "";
      root.append(h, p);
      const body = op.requestBody?.content?.["application/json"]?.schema;
      if (body) root.append(block("request body", resolve(body, spec)));
      for (const [status, response] of Object.entries(op.responses || {})) {
        const schema = response.content?.["application/json"]?.schema;
        if (schema) root.append(block(`${status}: ${response.description}`, resolve(schema, spec)));
      }
    }
  }
}

main();
