// Session stickiness read the way mod_proxy_balancer reads it, kept apart from
// the balancing strategies: this module only answers "which route, if any,
// does this request ask for". No regexes: it runs on every request.

export interface StickyNames {
  /** Cookie looked up in the Cookie header. */
  cookie: string;
  /** Parameter looked up in the URL (";jsessionid=" or "?BALANCEID="). */
  param: string;
}

export interface StickyOptions {
  names: StickyNames;
  /** One character, or "" for none (the whole value is then the route). */
  separator: string;
  /** Apache's scolonpathdelim: ';' also ends a URL parameter value. */
  semicolonEndsParam: boolean;
  /** Ignore the URL parameter; only the cookie selects a route. */
  trustCookieOnly: boolean;
}

/** "BALANCEID" -> same name twice; "JSESSIONID|jsessionid" -> cookie|param, like Apache. */
export function parseStickyNames(stickysession: string): StickyNames {
  const bar = stickysession.indexOf("|");
  if (bar < 0) return { cookie: stickysession, param: stickysession };
  return { cookie: stickysession.slice(0, bar), param: stickysession.slice(bar + 1) };
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * Value of cookie `name`, found the way Apache's get_cookie_param finds it:
 * the name must start the header or follow ';', ',' or whitespace; optional
 * spaces before '='; the value runs to the next ';' or ','. Case-sensitive.
 * Anything malformed simply yields no value.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || !name) return undefined;
  for (let at = header.indexOf(name); at >= 0; at = header.indexOf(name, at + 1)) {
    const before = at === 0 ? 59 : header.charCodeAt(at - 1);
    if (before !== 59 && before !== 44 && !isSpace(before)) continue;
    let i = at + name.length;
    while (i < header.length && isSpace(header.charCodeAt(i))) i++;
    if (header.charCodeAt(i) !== 61 /* = */ || i + 1 >= header.length) continue;
    i++;
    let end = i;
    while (end < header.length) {
      const c = header.charCodeAt(end);
      if (c === 59 || c === 44) break;
      end++;
    }
    return header.slice(i, end);
  }
  return undefined;
}

/**
 * Value of URL parameter `name` as Apache's get_path_param finds it: the first
 * "name=" anywhere in path or query, value ending at '?', '&' (and ';' when
 * scolonpathdelim is on). Apache does not look at the character before the
 * name; neither do we, so the same URLs select the same routes.
 */
export function urlParamValue(url: string, name: string, semicolonEnds: boolean): string | undefined {
  if (!name) return undefined;
  for (let at = url.indexOf(name); at >= 0; at = url.indexOf(name, at + 1)) {
    let i = at + name.length;
    if (url.charCodeAt(i) !== 61 /* = */) continue;
    i++;
    // apr_strtok skips leading delimiters before the token.
    while (i < url.length && isParamDelim(url.charCodeAt(i), semicolonEnds)) i++;
    if (i >= url.length) continue;
    let end = i;
    while (end < url.length && !isParamDelim(url.charCodeAt(end), semicolonEnds)) end++;
    return url.slice(i, end);
  }
  return undefined;
}

function isParamDelim(c: number, semicolon: boolean): boolean {
  return c === 63 /* ? */ || c === 38 /* & */ || (semicolon && c === 59);
}

/**
 * Apache's rule: the route is everything after the FIRST separator.
 * "balancer.lb2" -> "lb2"; "a.b.lb2" -> "b.lb2"; "lb2" (no separator) -> none.
 */
export function routeFromValue(value: string | undefined, separator: string): string | undefined {
  if (value === undefined) return undefined;
  if (separator === "") return value === "" ? undefined : value;
  const at = value.indexOf(separator);
  if (at < 0 || at + 1 >= value.length) return undefined;
  return value.slice(at + 1);
}

/** The route a request asks for, or undefined when it asks for none. */
export function requestedRoute(url: string, cookieHeader: string | undefined, o: StickyOptions): string | undefined {
  // Like Apache: a URL parameter, when present, decides alone; the cookie is
  // consulted only when the URL has none.
  if (!o.trustCookieOnly) {
    const fromUrl = urlParamValue(url, o.names.param, o.semicolonEndsParam);
    if (fromUrl !== undefined) return routeFromValue(fromUrl, o.separator);
  }
  return routeFromValue(cookieValue(cookieHeader, o.names.cookie), o.separator);
}
