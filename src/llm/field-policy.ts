/**
 * Field policy: which top-level request fields reach a provider, under which name, with which
 * value. Compiled once per provider and model at config load; `apply` is a few Set and Map
 * lookups per field.
 */
import type { FieldPolicyConfig, FieldTransformConfig } from './schema.ts';

/** Fields an allow list never drops: without them no endpoint works. */
const ALWAYS_ALLOWED: readonly string[] = ['model', 'messages', 'prompt', 'input', 'stream'];

/** Dropped fields named one by one in a response; past this many, the rest are counted (`+12 more`). */
const MAX_REPORTED_DROPS = 32;
/** Longest dropped field name reported whole (in characters, before escaping). */
const MAX_REPORTED_NAME_CHARS = 64;
/** A token (RFC 9110 §5.6.2) without `%`, which marks an escape, and not too long: reported as is. */
const PLAIN_NAME = /^[!#$&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
/** Bytes of {@link PLAIN_NAME}'s class, for escaping the others. */
const PLAIN_BYTE = new Uint8Array(128);
for (const c of "!#$&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  PLAIN_BYTE[c.charCodeAt(0)] = 1;
}

/**
 * How a dropped field is named in `x-switchyard-dropped-fields`. The name is whatever key the
 * client put in its body: a CR or LF in it would otherwise split our response head (header
 * injection), and a comma would break the list. A short token is kept as is; anything else is
 * reported as the percent-encoded UTF-8 of its first 64 characters, with an encoded `…` when cut.
 */
export function reportedFieldName(name: string): string {
  if (PLAIN_NAME.test(name)) return name;
  const cut = name.length > MAX_REPORTED_NAME_CHARS;
  const bytes = Buffer.from(cut ? name.slice(0, MAX_REPORTED_NAME_CHARS) : name, 'utf8');
  let out = '';
  for (const b of bytes) {
    out +=
      b < 128 && PLAIN_BYTE[b] === 1 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return cut ? `${out}%E2%80%A6` : out;
}

/** What {@link FieldPolicy.apply} changed, as header-ready lists; null where nothing changed. */
export interface FieldChanges {
  /**
   * Fields removed by allow or deny, named as {@link reportedFieldName} reports them; past 32,
   * a last entry `+<n> more` counts the rest.
   */
  dropped: string[] | null;
  /** Fields whose value a transform changed. */
  transformed: string[] | null;
  /** Renames applied, as `from=to`. */
  renamed: string[] | null;
}

type TransformFn = (value: unknown) => unknown;

function toBoolean(value: unknown): unknown {
  return Boolean(value);
}

function toStringValue(value: unknown): unknown {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function toNumber(value: unknown): unknown {
  if (typeof value !== 'string' || value.trim() === '') return value;
  const n = Number(value);
  return Number.isNaN(n) ? value : n;
}

function compileTransform(config: FieldTransformConfig): TransformFn {
  if (config === 'to-boolean') return toBoolean;
  if (config === 'to-string') return toStringValue;
  if (config === 'to-number') return toNumber;
  const min = config.clamp.min ?? Number.NEGATIVE_INFINITY;
  const max = config.clamp.max ?? Number.POSITIVE_INFINITY;
  return (value) => (typeof value === 'number' ? Math.min(max, Math.max(min, value)) : value);
}

/** A compiled field policy; see the file comment. */
export class FieldPolicy {
  #allow: Set<string> | null;
  #deny: Set<string> | null;
  #transform: Map<string, TransformFn> | null;
  #rename: Map<string, string> | null;

  /**
   * Compiles a provider policy with an optional per-model policy over it: allow and deny lists
   * add up, the model's renames and transforms override the provider's for the same field.
   * @returns null when the result does nothing, so callers skip the policy entirely.
   */
  static compile(provider?: FieldPolicyConfig, model?: FieldPolicyConfig): FieldPolicy | null {
    const allow = union(provider?.allow, model?.allow);
    const deny = union(provider?.deny, model?.deny);
    const rename = { ...provider?.rename, ...model?.rename };
    const transform = { ...provider?.transform, ...model?.transform };
    if (allow === null && deny === null && Object.keys(rename).length === 0 && Object.keys(transform).length === 0) {
      return null;
    }
    return new FieldPolicy(allow, deny, rename, transform);
  }

  private constructor(
    allow: string[] | null,
    deny: string[] | null,
    rename: Record<string, string>,
    transform: Record<string, FieldTransformConfig>,
  ) {
    this.#allow = allow === null ? null : new Set([...allow, ...ALWAYS_ALLOWED]);
    this.#deny = deny === null ? null : new Set(deny);
    const renames = Object.entries(rename);
    this.#rename = renames.length === 0 ? null : new Map(renames);
    const transforms = Object.entries(transform);
    this.#transform =
      transforms.length === 0 ? null : new Map(transforms.map(([field, t]) => [field, compileTransform(t)]));
  }

  /** Applies the policy to `body` in place (the caller passes its own copy) and reports the changes. */
  apply(body: Record<string, unknown>): FieldChanges {
    const changes: FieldChanges = { dropped: null, transformed: null, renamed: null };
    const allow = this.#allow;
    const deny = this.#deny;
    if (allow !== null || deny !== null) {
      let unreported = 0;
      for (const field of Object.keys(body)) {
        if ((allow !== null && !allow.has(field)) || deny?.has(field)) {
          delete body[field];
          const dropped = (changes.dropped ??= []);
          if (dropped.length < MAX_REPORTED_DROPS) dropped.push(reportedFieldName(field));
          else unreported++;
        }
      }
      if (unreported > 0) changes.dropped!.push(`+${unreported} more`);
    }
    if (this.#transform !== null) {
      for (const [field, fn] of this.#transform) {
        if (!Object.hasOwn(body, field)) continue;
        const before = body[field];
        const after = fn(before);
        if (after !== before) {
          body[field] = after;
          (changes.transformed ??= []).push(field);
        }
      }
    }
    if (this.#rename !== null) {
      for (const [from, to] of this.#rename) {
        if (!Object.hasOwn(body, from)) continue;
        body[to] = body[from];
        delete body[from];
        (changes.renamed ??= []).push(`${from}=${to}`);
      }
    }
    return changes;
  }
}

function union(a: string[] | undefined, b: string[] | undefined): string[] | null {
  if (a === undefined && b === undefined) return null;
  return [...(a ?? []), ...(b ?? [])];
}
