// What a person sees when an htmx request fails. base.html's htmx-config swaps the 4xx answers
// our forms give, so their messages render in place; any other failure (a 5xx, a 403 or 404, no
// connection) shows the #request-error banner until it is dismissed or a later request succeeds.
"use strict";
{
  const banner = document.getElementById("request-error");
  const show = (text) => {
    banner.querySelector("p").textContent = text;
    banner.hidden = false;
  };
  const swapsInPlace = (status) =>
    htmx.config.responseHandling.find((rule) => new RegExp(rule.code).test(String(status)))?.swap === true;

  // With DEBUG on, django-htmx's script (listening on the document) replaces the whole page with
  // any 400 answer, to show Django's debug pages; a form's 400 fragment swaps in place instead.
  document.body.addEventListener("htmx:beforeOnLoad", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status >= 400 && swapsInPlace(xhr.status) && !/^\s*<!doctype/i.test(xhr.responseText)) {
      event.stopPropagation();
    }
  });
  document.body.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    show(
      status === 403
        ? "This page is out of date or you were signed out: reload the page and try again."
        : `The server could not complete this request (error ${status}). Try again in a moment; reload the page if it keeps happening.`,
    );
  });
  document.body.addEventListener("htmx:sendError", () => {
    show("The server could not be reached. Check your connection and try again.");
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.successful) banner.hidden = true;
  });
  banner.querySelector("button").addEventListener("click", () => {
    banner.hidden = true;
  });
}
