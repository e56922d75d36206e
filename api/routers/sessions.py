from ninja import Router

router = Router(tags=["Sessions"])
