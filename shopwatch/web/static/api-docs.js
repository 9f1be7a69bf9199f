/* The OpenAPI page, from the swagger-ui-dist bundle served by Shopwatch itself. */
window.addEventListener("load", function () {
  var el = document.getElementById("swagger");
  if (!el || !window.SwaggerUIBundle) return;
  window.SwaggerUIBundle({url: el.dataset.spec, domNode: el, deepLinking: false,
                          tryItOutEnabled: false, validatorUrl: null});
});
