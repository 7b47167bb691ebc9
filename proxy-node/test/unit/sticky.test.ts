import { strict as assert } from "node:assert";
import { cookieValue, urlParamValue, routeFromValue, requestedRoute, parseStickyNames, StickyOptions } from "../../src/sticky";

const balanceid: StickyOptions = { names: parseStickyNames("BALANCEID"), separator: ".", semicolonEndsParam: true, trustCookieOnly: false };
const jsession: StickyOptions = { names: parseStickyNames("JSESSIONID|jsessionid"), separator: ".", semicolonEndsParam: true, trustCookieOnly: false };

describe("unit: route extraction (Apache rules)", () => {
  it("balancer.lb2 -> lb2", () => assert.equal(routeFromValue("balancer.lb2", "."), "lb2"));
  it("several dots: everything after the FIRST separator (a.b.lb2 -> b.lb2)", () => assert.equal(routeFromValue("a.b.lb2", "."), "b.lb2"));
  it("no separator: no route", () => assert.equal(routeFromValue("lb2", "."), undefined));
  it("separator at the end: no route", () => assert.equal(routeFromValue("balancer.", "."), undefined));
  it("empty separator: the whole value is the route", () => assert.equal(routeFromValue("lb2", ""), "lb2"));
  it("another separator character", () => assert.equal(routeFromValue("abc_lb1", "_"), "lb1"));
});

describe("unit: cookie lookup", () => {
  it("finds the cookie among others", () => assert.equal(cookieValue("a=1; BALANCEID=balancer.lb2; b=2", "BALANCEID"), "balancer.lb2"));
  it("the first occurrence wins", () => assert.equal(cookieValue("BALANCEID=balancer.lb1; BALANCEID=balancer.lb2", "BALANCEID"), "balancer.lb1"));
  it("a name that only ends with the sticky name does not match", () => assert.equal(cookieValue("XBALANCEID=balancer.lb2", "BALANCEID"), undefined));
  it("a longer name that starts with the sticky name does not match", () => assert.equal(cookieValue("BALANCEID2=balancer.lb2", "BALANCEID"), undefined));
  it("spaces before = are allowed like Apache; the value stops at ; or ,", () => {
    assert.equal(cookieValue("x=1,BALANCEID =balancer.lb1,y=2", "BALANCEID"), "balancer.lb1");
  });
  it("is case-sensitive like Apache", () => assert.equal(cookieValue("balanceid=balancer.lb2", "BALANCEID"), undefined));
  it("malformed headers yield nothing and never throw", () => {
    for (const h of ["", ";;;", "BALANCEID", "BALANCEID=", "=;=;", "BALANCEID;=x", "\u0000BALANCEID=\u0000", "%%%", 'BALANCEID=="""', "a".repeat(10000)]) {
      const v = cookieValue(h, "BALANCEID");
      assert.ok(v === undefined || typeof v === "string");
    }
    assert.equal(cookieValue("BALANCEID=", "BALANCEID"), undefined);
    assert.equal(cookieValue(undefined, "BALANCEID"), undefined);
  });
});

describe("unit: URL parameter lookup", () => {
  it(";jsessionid= path parameter", () => assert.equal(urlParamValue("/shop;jsessionid=abc.lb2?x=1", "jsessionid", true), "abc.lb2"));
  it("query parameter", () => assert.equal(urlParamValue("/x?a=1&BALANCEID=balancer.lb1&b=2", "BALANCEID", true), "balancer.lb1"));
  it("; ends the value only with scolonpathdelim", () => {
    assert.equal(urlParamValue("/x?BALANCEID=balancer.lb1;foo", "BALANCEID", true), "balancer.lb1");
    assert.equal(urlParamValue("/x?BALANCEID=balancer.lb1;foo", "BALANCEID", false), "balancer.lb1;foo");
  });
  it("name without = is not a parameter", () => assert.equal(urlParamValue("/BALANCEID/x", "BALANCEID", true), undefined));
});

describe("unit: stickiness decision", () => {
  it("cookie route", () => assert.equal(requestedRoute("/", "BALANCEID=balancer.lb2", balanceid), "lb2"));
  it("URL parameter wins over the cookie, like Apache", () => {
    assert.equal(requestedRoute("/?BALANCEID=balancer.lb1", "BALANCEID=balancer.lb2", balanceid), "lb1");
  });
  it("a URL value without separator gives no route even when a cookie exists (Apache does not fall back)", () => {
    assert.equal(requestedRoute("/?BALANCEID=lb1", "BALANCEID=balancer.lb2", balanceid), undefined);
  });
  it("trustCookieOnly ignores the URL parameter", () => {
    assert.equal(requestedRoute("/?BALANCEID=balancer.lb1", "BALANCEID=balancer.lb2", { ...balanceid, trustCookieOnly: true }), "lb2");
  });
  it("JSESSIONID|jsessionid: cookie JSESSIONID, path parameter jsessionid", () => {
    assert.equal(requestedRoute("/", "JSESSIONID=ABC123.lb2", jsession), "lb2");
    assert.equal(requestedRoute("/cart;jsessionid=ABC123.lb1", "JSESSIONID=ABC123.lb2", jsession), "lb1");
    assert.equal(requestedRoute("/", "jsessionid=ABC123.lb2", jsession), undefined);
  });
  it("no cookie, no parameter: no route", () => assert.equal(requestedRoute("/", undefined, balanceid), undefined));
});
