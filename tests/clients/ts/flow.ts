// The flow an integrating TypeScript service writes with the client generated from
// docs/openapi.json (openapi-typescript types, openapi-fetch, default settings): every call goes
// through the typed client, no hand-written request, no cast. tests/clients/test_typescript_client.py
// compiles it with `tsc --strict` next to the generated schema and runs it with node (v20: global
// fetch, FormData, Blob) against a live `scenedex api` and `scenedex worker`:
//
//   node flow.js BASE_URL TOKEN SOURCE_URI KEYFRAME_URI PHOTO_PATH
//
// It prints one JSON object of what each call answered; the test asserts on it. A failed
// expectation of the flow itself (an answer of the wrong kind) exits 1 with its reason.
//
// Uploads: openapi-typescript types `format: binary` fields as `string` (its default; the
// `--default-non-nullable`... options do not change that), so the multipart bodies carry file
// names and their `bodySerializer` builds the FormData with the bytes those names stand for.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
type Hit = components["schemas"]["SearchResult"];

const [baseUrl, token, sourceUri, keyframeUri, photoPath] = process.argv.slice(2);
const PHRASE = "a lighthouse keeper juggles jars of marmalade";
const WAIT_MS = 150_000;

const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
const files = new Map<string, Blob>([[basename(photoPath), new Blob([readFileSync(photoPath)], { type: "image/png" })]]);

function fail(what: string, answer: unknown): never {
  throw new Error(`${what}: ${JSON.stringify(answer)}`);
}

function form(fields: Record<string, string | string[]>): FormData {
  const data = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      const file = files.get(item);
      if (file !== undefined) {
        data.append(name, file, item);
      } else {
        data.append(name, item);
      }
    }
  }
  return data;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
}

function hitSummary(hits: Hit[]): { scene_id: string; video_id: string; persons: string[] }[] {
  return hits.map((hit) => ({
    scene_id: hit.scene_id,
    video_id: hit.video_id,
    persons: hit.persons.map((person) => person.person_id),
  }));
}

async function main(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};

  // A person from a photo, twice with one Idempotency-Key: the second answer is the first's.
  const createPerson = () =>
    client.POST("/v1/persons", {
      params: { header: { "Idempotency-Key": "ts-flow-1" } },
      body: { name: "Eileen Collins", photos: [basename(photoPath)] },
      bodySerializer: form,
    });
  const created = await createPerson();
  const replayed = await createPerson();
  if (created.data === undefined || replayed.data === undefined) {
    fail("createPerson", [created.error, replayed.error]);
  }
  const personId = created.data.person_id;
  out.person = {
    status: created.response.status,
    person_id: personId,
    photos: created.data.photos.length,
    replay_status: replayed.response.status,
    replay_person_id: replayed.data.person_id,
    replayed_header: replayed.response.headers.get("Idempotent-Replayed"),
  };
  const searchable = await until("the person to be searchable", async () => {
    const { data } = await client.GET("/v1/persons/{person_id}", { params: { path: { person_id: personId } } });
    return data?.searchable ? data : undefined;
  });
  out.person_searchable = { photos: searchable.photos.map((photo) => photo.status) };

  // A video by reference, with the upstream cut, its texts and the keyframe of one scene.
  // X-Request-ID: the id of the request, echoed (and on the lines of the jobs it enqueues).
  const video = await client.POST("/v1/videos", {
    headers: { "X-Request-ID": "ts-flow-video" },
    body: {
      source_uri: sourceUri,
      title: "Bikes",
      external_id: "ts-bikes-1",
      scenes: [
        { start_s: 0, end_s: 3, transcript: "here they come", visual_description: "", summary: "riders gather at a crossing" },
        {
          start_s: 3,
          end_s: 6.5,
          keyframe_uri: keyframeUri,
          transcript: "",
          visual_description: "a portrait in a white flight suit",
          summary: PHRASE,
        },
        { start_s: 6.5, end_s: 10, transcript: "", visual_description: "a busy street", summary: "the riders leave" },
      ],
    },
  });
  if (video.data === undefined) {
    fail("createVideo", video.error);
  }
  const videoId = video.data.video_id;
  out.video = {
    status: video.response.status,
    video_id: videoId,
    location: video.response.headers.get("Location"),
    retry_after: video.response.headers.get("Retry-After"),
    request_id: video.response.headers.get("X-Request-ID"),
  };
  const ready = await until("the video to be ready", async () => {
    const { data } = await client.GET("/v1/videos/{video_id}", { params: { path: { video_id: videoId } } });
    if (data?.status === "failed") {
      fail("the video failed", data);
    }
    return data?.status === "ready" ? data : undefined;
  });
  const faceScene = ready.scenes[1].scene_id;
  const got = await client.GET("/v1/videos/{video_id}", { params: { path: { video_id: videoId } } });
  const etag = got.response.headers.get("ETag") ?? "";
  const unchanged = await client.GET("/v1/videos/{video_id}", {
    params: { path: { video_id: videoId }, header: { "if-none-match": etag } },
  });
  out.ready = { scenes: ready.scenes.length, face_scene: faceScene, etag, not_modified: unchanged.response.status };

  // The three searches.
  const byText = await client.GET("/v1/search", { params: { query: { text: PHRASE, k: 3 } } });
  const byPerson = await client.GET("/v1/search", { params: { query: { person_id: personId, k: 5 } } });
  const byImage = await client.POST("/v1/search/image", {
    params: { query: { k: 3 } },
    body: { image: basename(photoPath) },
    bodySerializer: form,
  });
  if (byText.data === undefined || byPerson.data === undefined || byImage.data === undefined) {
    fail("search", [byText.error, byPerson.error, byImage.error]);
  }
  out.search = {
    text: hitSummary(byText.data.results),
    person: hitSummary(byPerson.data.results),
    image: hitSummary(byImage.data.results),
  };

  // The keyframe of the first hit, then again with its ETag: 304.
  const keyframe = await client.GET("/v1/scenes/{scene_id}/keyframe", {
    params: { path: { scene_id: faceScene } },
    parseAs: "arrayBuffer",
  });
  if (keyframe.data === undefined) {
    fail("getKeyframe", keyframe.error);
  }
  const keyframeTag = keyframe.response.headers.get("ETag") ?? "";
  const cached = await client.GET("/v1/scenes/{scene_id}/keyframe", {
    params: { path: { scene_id: faceScene }, header: { "if-none-match": keyframeTag } },
    parseAs: "arrayBuffer",
  });
  out.keyframe = {
    status: keyframe.response.status,
    content_type: keyframe.response.headers.get("Content-Type"),
    jpeg: Array.from(new Uint8Array(keyframe.data.slice(0, 3))),
    etag: keyframeTag,
    cached_status: cached.response.status,
    cached_bytes: cached.data === undefined ? 0 : cached.data.byteLength,
  };

  // Problems: a 404 and a 422, as application/problem+json.
  const missing = await client.GET("/v1/persons/{person_id}", {
    params: { path: { person_id: "00000000-0000-4000-8000-000000000000" } },
  });
  const invalid = await client.GET("/v1/search", { params: { query: { text: "x", k: 0 } } });
  const problems: [string, Problem | undefined, Response][] = [
    ["not_found", missing.error, missing.response],
    ["invalid", invalid.error, invalid.response],
  ];
  for (const [name, problem, response] of problems) {
    if (problem === undefined) {
      fail(name, response.status);
    }
    out[name] = {
      status: response.status,
      content_type: response.headers.get("Content-Type"),
      code: problem.code,
      problem_status: problem.status,
      type: problem.type,
      fields: (problem.errors ?? []).map((error) => error.field),
    };
  }

  // Delete the video (the worker removes it: 404 once done), then the person.
  // X-Request-ID again: the worker's line about the deletion carries it (the test reads its log).
  const deleted = await client.DELETE("/v1/videos/{video_id}", {
    params: { path: { video_id: videoId } },
    headers: { "X-Request-ID": "ts-flow-delete" },
  });
  const gone = await until("the video to be deleted", async () => {
    const { response } = await client.GET("/v1/videos/{video_id}", { params: { path: { video_id: videoId } } });
    return response.status === 404 ? response.status : undefined;
  });
  const deletedPerson = await client.DELETE("/v1/persons/{person_id}", {
    params: { path: { person_id: personId } },
  });
  const personGone = await client.GET("/v1/persons/{person_id}", { params: { path: { person_id: personId } } });
  out.delete = {
    video_status: deleted.response.status,
    video_location: deleted.response.headers.get("Location"),
    video_gone: gone,
    person_status: deletedPerson.response.status,
    person_gone: personGone.response.status,
  };
  return out;
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
