"""A publish rule given as a dotted path."""


def is_published(article) -> bool:
    return article.status == "published" and bool(article.title)
