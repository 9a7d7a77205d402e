//! A page's resource with its methods written once: `page(web::resource("/x")).get(show)
//! .post(save)` adds the routes and answers any other method (`TRACE`, `PUT`, …) 405 with
//! `Allow` listing them (RFC 9110), as the API does from its OpenAPI document.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header;
use actix_web::{web, FromRequest, Handler, HttpResponse, Resource, Responder};

pub struct PageResource {
    resource: Resource,
    methods: Vec<&'static str>,
}

pub fn page(resource: Resource) -> PageResource {
    PageResource {
        resource,
        methods: Vec::new(),
    }
}

impl PageResource {
    /// `GET` (and so `HEAD`, answered like `GET`).
    pub fn get<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.get(handler);
        self.methods.extend(["GET", "HEAD"]);
        self
    }

    pub fn post<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.post(handler);
        self.methods.push("POST");
        self
    }
}

impl HttpServiceFactory for PageResource {
    fn register(self, config: &mut AppService) {
        let allow = self.methods.join(", ");
        self.resource
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move {
                    HttpResponse::MethodNotAllowed()
                        .insert_header((header::ALLOW, allow.clone()))
                        .content_type("text/plain; charset=utf-8")
                        .body(format!("405 Method Not Allowed: this page takes {allow}\n"))
                }
            }))
            .register(config)
    }
}
