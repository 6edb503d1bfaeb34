"""The public blog: published articles with their header images ({% header_image %})."""

from django.views.generic import DetailView, ListView

from .models import Article


class PublishedArticles:
    """Drafts are not public: a draft's page is a 404."""

    def get_queryset(self):
        return Article.objects.filter(status=Article.Status.PUBLISHED)


class ArticleListView(PublishedArticles, ListView):
    template_name = "blog/article_list.html"
    context_object_name = "articles"
    paginate_by = 20


class ArticleDetailView(PublishedArticles, DetailView):
    template_name = "blog/article_detail.html"
    context_object_name = "article"
