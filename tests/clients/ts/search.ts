// The core call as an integrating TypeScript service writes it with the generated client
// (openapi-typescript types of docs/openapi.json, openapi-fetch): no cast, no hand-built URL.
// tests/clients/test_clients.py type-checks it with `tsc --strict` next to the generated schema.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:8080",
  headers: { Authorization: "Bearer <token>" },
});

export async function nearestScenes(text: string): Promise<string[]> {
  const { data, error } = await client.GET("/v1/search", { params: { query: { text, k: 5 } } });
  if (error) {
    throw new Error(JSON.stringify(error));
  }
  return data.results.map((hit) => `${hit.scene_id} ${hit.score.toFixed(3)}`);
}

export async function nearestForPerson(personId: string): Promise<number> {
  const { data } = await client.GET("/v1/search", { params: { query: { person_id: personId, k: 3 } } });
  return data?.results.length ?? 0;
}
