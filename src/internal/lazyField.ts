/**
 * Objects with one property made when first read, cheaply.
 *
 * An object literal with a getter is a dictionary in V8 (with a shape of its
 * own: about 1.2 KB per object), and the transport and box protocol made one
 * per connection for their `incoming`/`boxes` streams, which most
 * connections never read. Here the getter lives on a prototype made once per
 * key, and the objects keep fast, shared shapes.
 */

const make = Symbol("lazyField/make")
const value = Symbol("lazyField/value")

interface Holder {
  /** Until the first read; then `undefined`, so the maker and what it holds can go. */
  [make]: (() => unknown) | undefined
  [value]: unknown
}

/**
 * A constructor of objects holding `fields` and a `key` computed by the
 * `make` given to it, on first read, once. Call at module level: each call
 * makes a prototype.
 */
export const lazyField = <K extends string>(key: K) => {
  const prototype = Object.create(Object.prototype, {
    [key]: {
      get(this: Holder) {
        const makeValue = this[make]
        if (makeValue !== undefined) {
          this[value] = makeValue()
          this[make] = undefined
        }
        return this[value]
      },
      enumerable: true
    }
  }) as object
  return <T extends object, V>(fields: T, makeValue: () => V): T & { readonly [P in K]: V } => {
    const holder = Object.assign(Object.create(prototype) as Holder, fields)
    holder[make] = makeValue
    holder[value] = undefined
    return holder as unknown as T & { readonly [P in K]: V }
  }
}
